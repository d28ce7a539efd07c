"""Everything that makes a running Hygeia node, and the deterministic simulator."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hygeia")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
