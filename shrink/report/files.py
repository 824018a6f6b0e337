"""The report's files, written atomically (see ``shrink.atomic``)."""

from pathlib import Path

import pandas as pd

from shrink.atomic import atomic_path


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` (without its index) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
