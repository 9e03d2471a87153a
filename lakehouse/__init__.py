"""Clinical data lakehouse with governed AI: the core library (bottom layer)."""

from importlib import metadata

try:
    __version__ = metadata.version("clinical-lakehouse")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
