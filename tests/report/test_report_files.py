"""Atomic writes: a failed write leaves the old file and no temporary file."""

import pandas as pd
import pyarrow as pa
import pytest

from shrink.report.files import write_parquet, write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_text("old\n", tmp_path / "report.md")
    bad = pd.DataFrame({"x": [1, "a"]})  # mixed object column: pyarrow refuses it
    with pytest.raises(pa.ArrowInvalid, match="Conversion failed for column x with type object"):
        write_parquet(bad, tmp_path / "report.md")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_write_creates_the_directory_and_replaces_the_file(tmp_path):
    path = tmp_path / "new" / "t.parquet"
    write_parquet(pd.DataFrame({"x": [1.5]}), path)
    write_parquet(pd.DataFrame({"x": [2.5]}), path)
    assert pd.read_parquet(path)["x"].tolist() == [2.5]
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]
