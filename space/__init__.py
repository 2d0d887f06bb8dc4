"""The design space: ArchSpec (one network, validated), registries of design choices, build_model.

Names are imported lazily so that `from space.errors import ConfigError` (every CLI command)
does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ArchSpec": "space.spec",
    "load_arch": "space.spec",
    "dump_arch": "space.spec",
    "preset_names": "space.spec",
    "build_model": "space.model",
    "ConfigError": "space.errors",
    "SearchSpace": "space.search_space",
    "check_memory": "space.guard",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'space' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
