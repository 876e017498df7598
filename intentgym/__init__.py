"""intentgym: compare alignment training methods on intent-framed text environments.

Kept light on purpose: importing ``intentgym`` (or a subpackage) loads nothing heavy.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:  # pyproject.toml's ``version`` is the single source
    __version__ = version("intentgym")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
