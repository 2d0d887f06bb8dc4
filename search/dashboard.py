"""optuna-dashboard on a study's storage, bound to loopback unless asked otherwise."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

from search.export import mask_url, open_study
from space.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_port(host: str, port: int) -> None:
    """ConfigError if (host, port) cannot be bound, before optuna-dashboard fails with a traceback."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, port))
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port",
                          source="<arg>", field="--port") from None


def artifact_dir(study: object, run_dir: Path) -> Path:
    """Where the study's runner put its artifacts: the stored config's `dashboard.artifact_dir`,
    else <run folder>/artifacts (search.config.StudyConfig.artifact_dir)."""
    config = getattr(study, "user_attrs", {}).get("config") or {}
    stored = (config.get("dashboard") or {}).get("artifact_dir")
    return Path(stored) if stored else run_dir / "artifacts"


def run_dashboard(storage_url: str, study_name: str, host: str = "127.0.0.1", port: int = 8080,
                  artifacts: Path | None = None) -> None:
    """Serve optuna-dashboard until interrupted, with the artifact store at `artifacts` (when that
    folder exists). The study must exist (ConfigError otherwise)."""
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    open_study(storage_url, study_name)
    check_port(host, port)
    if host not in LOOPBACK:
        # optuna-dashboard has no authentication and can edit notes and trials
        print(f"warning: dashboard on {host} is reachable from other machines, without a password",
              file=sys.stderr)
    store = FileSystemArtifactStore(str(artifacts)) if artifacts is not None and artifacts.is_dir() else None
    print(f"optuna-dashboard for study {study_name} ({mask_url(storage_url)}): http://{host}:{port}/dashboard/"
          f"  (Ctrl-C stops it)\nartifacts {artifacts if store else 'none'}", flush=True)
    optuna_dashboard.run_server(storage_url, host=host, port=port, artifact_store=store)
