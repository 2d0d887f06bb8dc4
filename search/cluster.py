"""Ray for a study: join the cluster `--address` names, or start a private local Ray that goes
when the study goes (`search.watchdog`)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from search.storage import one_line
from space.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
# how long `--address` may take to accept a TCP connection before the study is refused
CONNECT_TIMEOUT_S = 5.0


def check_address(address: str) -> None:
    """ConfigError unless something accepts a TCP connection at `address` within CONNECT_TIMEOUT_S:
    Ray itself retries an unreachable address for minutes."""
    if address == "auto":
        return  # Ray looks the cluster up itself
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"must be HOST:PORT of a Ray head (got {address!r})", source="<arg>", field="--address"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ConfigError(
            f"nothing answers at {address} within {CONNECT_TIMEOUT_S:g} s ({one_line(err)}); "
            "is the Ray head running (ray start --head)?",
            source="<arg>",
            field="--address",
        ) from None


def ray_environment(address: str | None, verbose: bool) -> None:
    """Environment for Ray, read when ray is first imported: call before `import ray`."""
    if (
        address
        and "RAY_AUTH_MODE" not in os.environ
        and (Path.home() / ".ray" / "auth_token").is_file()
    ):
        # `ray start` clusters use token auth by default; ray.init(address=...) does not pick up
        # the token by itself (Ray 2.60) unless told to
        os.environ["RAY_AUTH_MODE"] = "token"
    if not address:
        # a private Ray listens on loopback only: with this (Ray's own switch for laptops), the node
        # address is 127.0.0.1 and GCS, raylet and workers bind to it, not to every interface
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Ctrl-C is a KeyboardInterrupt at once (the runner hands the trials back), not Tune's
    # "press again to force" that waits on the trials
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        for name in ("ray", "ray.tune", "ray.train"):
            logging.getLogger(name).setLevel(logging.ERROR)


def ray_up(address: str | None, verbose: bool) -> None:
    """Ray ready for the study, before the study creates anything: the address checked, then joined,
    or a local Ray started with its watchdog."""
    if address:
        check_address(address)
    ray_environment(address, verbose)
    ray_init(address, verbose)


def ray_init(address: str | None, verbose: bool) -> None:
    """Join `address`, or start a private local Ray (never a cluster that happens to run here)."""
    import ray

    if ray.is_initialized():
        return
    common = dict(
        log_to_driver=verbose,
        logging_level=logging.INFO if verbose else logging.ERROR,
        configure_logging=True,
    )
    if address:
        # workers on other nodes get the code through the runtime env, the data through the object store
        env = {
            "working_dir": str(REPO),
            "excludes": ["runs/", ".git/", ".venv/", "*.db", "benchmarks/"],
        }
        try:
            ray.init(address=address, runtime_env=env, **common)
        except ConnectionError as err:
            raise ConfigError(
                f"cannot join the Ray cluster ({one_line(err)})", source="<arg>", field="--address"
            ) from None
    else:
        env = {
            "env_vars": {
                "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
            }
        }
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            runtime_env=env,
            _node_ip_address="127.0.0.1",
            **common,
        )
        start_watchdog()


def start_watchdog() -> subprocess.Popen:
    """`search.watchdog` for this process: it outlives a kill -9 of this process or of its process
    group (its own session), and then ends the local Ray's processes."""
    return subprocess.Popen(
        [sys.executable, "-m", "search.watchdog", str(os.getpid())],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
