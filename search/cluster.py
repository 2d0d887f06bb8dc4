"""Ray for a study: join the cluster `--address` names, or start a private local Ray."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from search.storage import one_line
from space.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def ray_environment(address: str | None, verbose: bool) -> None:
    """Environment for Ray, read when ray is first imported: call before `import ray`."""
    if address and "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").is_file():
        # `ray start` clusters use token auth by default; ray.init(address=...) does not pick up
        # the token by itself (Ray 2.60) unless told to
        os.environ["RAY_AUTH_MODE"] = "token"
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        for name in ("ray", "ray.tune", "ray.train"):
            logging.getLogger(name).setLevel(logging.ERROR)


def ray_init(address: str | None, verbose: bool) -> None:
    """Join `address`, or start a private local Ray (never a cluster that happens to run here)."""
    import ray

    if ray.is_initialized():
        return
    common = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR,
                  configure_logging=True)
    if address:
        # workers on other nodes get the code through the runtime env, the data through the object store
        env = {"working_dir": str(REPO), "excludes": ["runs/", ".git/", ".venv/", "*.db", "benchmarks/"]}
        try:
            ray.init(address=address, runtime_env=env, **common)
        except ConnectionError as err:
            raise ConfigError(f"cannot join the Ray cluster ({one_line(err)})", source="<arg>",
                              field="--address") from None
    else:
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}}
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=env, **common)
