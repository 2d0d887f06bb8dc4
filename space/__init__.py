"""The design space: ArchSpec (one network, validated), registries of design choices, build_model."""
from space.errors import ConfigError
from space.model import build_model
from space.spec import ArchSpec, dump_arch, load_arch, preset_names

__all__ = ["ArchSpec", "ConfigError", "build_model", "dump_arch", "load_arch", "preset_names"]
