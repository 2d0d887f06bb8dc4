"""optuna-dashboard on a study's storage, bound to loopback unless asked otherwise."""

from __future__ import annotations

import errno
import os
import socket
import sys
import tempfile
from pathlib import Path

from search.export import mask_url, open_study
from space.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_host(host: str) -> None:
    """ConfigError naming --host when `host` is no address or name this machine can resolve. An
    address written out (127.0.0.1, ::1) needs no lookup."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError, ValueError):
        raise ConfigError(
            f"{host!r} is not an address or host name that resolves", source="<arg>", field="--host"
        ) from None


def check_port(host: str, port: int) -> None:
    """ConfigError if (host, port) cannot be bound, before optuna-dashboard fails with a traceback:
    a port outside 1..65535 or in use names --port, an address not of this machine --host."""
    if not 1 <= port <= 65535:
        raise ConfigError(
            f"must be between 1 and 65535, got {port}", source="<arg>", field="--port"
        )
    check_host(host)
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, port))
    except (OSError, OverflowError) as err:
        strerror = getattr(err, "strerror", None) or str(err)
        if getattr(err, "errno", None) == errno.EADDRNOTAVAIL:
            raise ConfigError(
                f"cannot listen on {host} ({strerror}): not an address of this machine",
                source="<arg>",
                field="--host",
            ) from None
        raise ConfigError(
            f"cannot listen on {host}:{port} ({strerror}); choose another --port",
            source="<arg>",
            field="--port",
        ) from None


def check_artifact_dir(path: Path) -> None:
    """ConfigError naming --artifact-dir unless `path` is a folder this process can write in, or
    can be created (optuna-dashboard stores uploaded artifacts there). Tried with a temporary
    folder, removed at once: permissions alone do not tell (root, read-only mounts, /proc)."""
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    why = "is a file, not a folder" if folder == path and not path.is_dir() else None
    if why is None:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".softgate-probe-", dir=folder))
        except OSError as err:
            why = (
                f"cannot be written ({err.strerror})"
                if folder == path
                else f"cannot be created in {folder} ({err.strerror})"
            )
    if why:
        raise ConfigError(why, source=str(path), field="--artifact-dir")


def artifact_dir(study: object, run_dir: Path) -> Path:
    """Where the study's runner put its artifacts: the stored config's `dashboard.artifact_dir`,
    else <run folder>/artifacts (search.config.StudyConfig.artifact_dir)."""
    config = getattr(study, "user_attrs", {}).get("config") or {}
    stored = (config.get("dashboard") or {}).get("artifact_dir")
    return Path(stored) if stored else run_dir / "artifacts"


def run_dashboard(
    storage_url: str,
    study_name: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    artifacts: Path | None = None,
) -> None:
    """Serve optuna-dashboard until interrupted, with the artifact store at `artifacts` (when that
    folder exists). The study must exist (ConfigError otherwise)."""
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    open_study(storage_url, study_name)
    check_port(host, port)
    if host not in LOOPBACK:
        # optuna-dashboard has no authentication and can edit notes and trials
        print(
            f"warning: dashboard on {host} is reachable from other machines, without a password",
            file=sys.stderr,
        )
    store = (
        FileSystemArtifactStore(str(artifacts))
        if artifacts is not None and artifacts.is_dir()
        else None
    )
    print(
        f"optuna-dashboard for study {study_name} ({mask_url(storage_url)}): http://{host}:{port}/dashboard/"
        f"  (Ctrl-C stops it)\nartifacts {artifacts if store else 'none'}",
        flush=True,
    )
    optuna_dashboard.run_server(storage_url, host=host, port=port, artifact_store=store)
