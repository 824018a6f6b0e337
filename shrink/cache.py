"""shrink's cache folder, the one rule for where datasets, bases and other downloads are kept."""

import os
from pathlib import Path

CACHE_ENV = "SHRINK_CACHE"


def cache_root() -> Path:
    """``$SHRINK_CACHE`` (``~`` expanded), default ``~/.cache/shrink``; datasets live in ``<root>/<name>``,
    bases in ``<root>/bases``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "shrink").expanduser()
