"""optuna-dashboard on a study's storage, bound to loopback unless asked otherwise."""
from __future__ import annotations

import socket
import sys

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


def run_dashboard(storage_url: str, study_name: str, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve optuna-dashboard until interrupted. The study must exist (ConfigError otherwise)."""
    import optuna_dashboard

    open_study(storage_url, study_name)
    check_port(host, port)
    if host not in LOOPBACK:
        # optuna-dashboard has no authentication and can edit notes and trials
        print(f"warning: dashboard on {host} is reachable from other machines, without a password",
              file=sys.stderr)
    print(f"optuna-dashboard for study {study_name} ({mask_url(storage_url)}): http://{host}:{port}/dashboard/"
          f"  (Ctrl-C stops it)", flush=True)
    optuna_dashboard.run_server(storage_url, host=host, port=port)
