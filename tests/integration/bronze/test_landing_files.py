"""Discovery and duplicate decisions of lakehouse.sources.files, on tiny in-memory frames."""

from __future__ import annotations

from typing import Any

import pytest

from lakehouse.sources import files as files_module
from lakehouse.sources.files import FileKey, decide_duplicates, discover

pytestmark = pytest.mark.spark

FILES = "file_path string, file_sha256 string, institution_code string, size_bytes long"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _manifest(spark: Any, rows: list[tuple[str, str, int, int, str]]) -> Any:
    from pyspark.sql import functions as F

    df = spark.createDataFrame(
        rows, "file_path string, file_sha256 string, size_bytes long, ms long, status string"
    )
    return df.select(
        "file_path",
        "file_sha256",
        "size_bytes",
        F.timestamp_millis("ms").alias("modified_at"),
        "status",
    )


def test_discover_takes_new_and_changed_files_in_path_order_up_to_the_limit(spark: Any) -> None:
    manifest = _manifest(
        spark,
        [
            ("file:/l/a", "x" * 64, 10, 1000, "landed"),  # unchanged
            ("file:/l/b", "y" * 64, 10, 1000, "landed"),  # touched since: new time
        ],
    )
    listing = [("file:/l/d", 3, 5), ("file:/l/b", 10, 2000), ("file:/l/a", 10, 1000)]
    found = discover(spark, listing, manifest, limit=1)
    assert (found.files_seen, found.files_unchanged) == (3, 1)
    assert found.new_files == [("file:/l/b", 10, 2000)]
    assert discover(spark, listing, manifest, limit=5).new_files == [
        ("file:/l/b", 10, 2000),
        ("file:/l/d", 3, 5),
    ]
    assert discover(spark, [], manifest, limit=5).files_seen == 0


@pytest.mark.parametrize("in_list_max", [1000, 0], ids=["in-list", "broadcast"])
def test_duplicates_are_earlier_content_under_another_name_never_the_file_itself(
    spark: Any, in_list_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_module, "_IN_LIST_MAX", in_list_max)
    manifest = _manifest(
        spark,
        [
            ("file:/l/old", "a" * 64, 5, 1, "landed"),
            ("file:/l/a_copy", "a" * 64, 5, 1, "duplicate"),  # not the landed copy: never named
            ("file:/l/touched", "b" * 64, 5, 1, "landed"),  # the same file, new time
            ("file:/l/empty_before", EMPTY, 0, 1, "quarantined"),
        ],
    )
    files = spark.createDataFrame(
        [
            ("file:/l/new_copy", "a" * 64, "H1", 5),  # landed before as /l/old
            ("file:/l/touched", "b" * 64, "H1", 5),  # itself: not a duplicate
            ("file:/l/run_b", "c" * 64, "H2", 7),  # first in the run by path
            ("file:/l/run_a", "c" * 64, "H2", 7),
            ("file:/l/empty1", EMPTY, "H1", 0),  # empty files: never duplicates
            ("file:/l/empty2", EMPTY, "H1", 0),
        ],
        FILES,
    )
    keys = {k.path: k for k in decide_duplicates(files, manifest)}
    assert {p: k.duplicate_of for p, k in keys.items()} == {
        "file:/l/new_copy": "file:/l/old",
        "file:/l/touched": None,
        "file:/l/run_a": None,
        "file:/l/run_b": "file:/l/run_a",
        "file:/l/empty1": None,
        "file:/l/empty2": None,
    }
    assert keys["file:/l/run_b"] == FileKey("file:/l/run_b", "c" * 64, "H2", 7, "file:/l/run_a")
