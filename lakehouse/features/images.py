"""Pixel features: the landed DICOM file of each silver imaging study -> features.image_pixels.

Pixel data stays in the landed file (bronze ``pixel_data_ref``, ADR 0024); this step reads
the file of the first instance of each study's first series **on the executors**
(``mapInArrow``, pydicom in the Python worker; nothing is collected to the driver), decodes
the first frame, applies the rescale slope and intercept, resamples it to 64x64 (block mean
when larger, nearest neighbour otherwise), scales it to [0, 1] by its own minimum and
maximum and stores it as 4,096 little-endian float32 values.

Incremental: a study is decoded when ``features.image_pixels`` has no row for it with the
same file, patient and study time (a rerun over unchanged studies decodes nothing). A file
that cannot be read (``LH-MMD-001``: missing, not a local path) or decoded (``LH-MMD-002``:
not DICOM, truncated, no or compressed pixel data) lands in
``features.image_pixels_quarantine`` with its code and a detail naming no value; the run goes
on. A quarantined study is tried again on every run and leaves the quarantine once decoded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.tables.features.images import IMAGE_PIXELS, IMAGE_PIXELS_QUARANTINE
from lakehouse.tables.silver.imaging import IMAGING_SERIES, IMAGING_STUDY
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import delete_keys, ensure_table, upsert

SIZE = 64
KEYS = ("institution_code", "source_system", "study_instance_uid")
#: What makes a stored row current: a study is decoded again when one of these changes.
IDENTITY = ("pixel_data_ref", "patient_key", "study_at")

_DECODED = pa.schema(
    [
        ("institution_code", pa.string()),
        ("source_system", pa.string()),
        ("study_instance_uid", pa.string()),
        ("sop_instance_uid", pa.string()),
        ("patient_key", pa.string()),
        ("study_at_us", pa.int64()),
        ("pixel_data_ref", pa.string()),
        ("file_sha256", pa.string()),
        ("pixels", pa.binary()),
        ("rows", pa.int32()),
        ("columns", pa.int32()),
        ("source_min", pa.float64()),
        ("source_max", pa.float64()),
        ("pixel_mean", pa.float64()),
        ("pixel_std", pa.float64()),
        ("error_code", pa.string()),
        ("error_name", pa.string()),
        ("detail", pa.string()),
    ]
)
_DDL = (
    "institution_code string, source_system string, study_instance_uid string, "
    "sop_instance_uid string, patient_key string, study_at_us long, pixel_data_ref string, "
    "file_sha256 string, pixels binary, rows int, columns int, source_min double, "
    "source_max double, pixel_mean double, pixel_std double, error_code string, "
    "error_name string, detail string"
)


@dataclass(frozen=True)
class ImagePixelsReport:
    """What one pixel build did."""

    pending: int
    decoded: int
    quarantined: int

    def counts(self) -> dict[str, int]:
        return {
            "image_studies_pending": self.pending,
            "image_pixels_decoded": self.decoded,
            "image_pixels_quarantined": self.quarantined,
        }


def local_path(ref: str) -> Path | None:
    """The local file of a ``file:`` URI or a plain path; None for another scheme."""
    parsed = urlparse(ref)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else ref)
    if len(parsed.scheme) == 1:  # a Windows drive letter
        return Path(ref)
    return None


def resample(img: np.ndarray, size: int = SIZE) -> np.ndarray:
    """``img`` (2-D) as ``size`` x ``size``: block means when both sides are multiples of
    ``size``, nearest neighbour otherwise."""
    rows, cols = img.shape
    if (rows, cols) == (size, size):
        return img
    if rows % size == 0 and cols % size == 0:
        return np.asarray(img.reshape(size, rows // size, size, cols // size).mean(axis=(1, 3)))
    ri = (np.arange(size) * rows / size).astype(int)
    ci = (np.arange(size) * cols / size).astype(int)
    return img[np.ix_(ri, ci)]


def scale(img: np.ndarray) -> np.ndarray:
    """(img - min) / (max - min) as float32; zeros when the image is flat."""
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(img.shape, dtype=np.float32)
    return ((img - lo) / (hi - lo)).astype(np.float32)


def decode(content: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    """DICOM bytes -> (float32 [64, 64] in [0, 1], stats); ValueError naming the reason."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(content), force=True)
        except Exception as exc:  # pydicom raises many types for damaged files
            raise ValueError(f"not readable as DICOM ({type(exc).__name__})") from None
        if "PixelData" not in ds:
            raise ValueError("no pixel data")
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        bits = int(ds.get("BitsAllocated", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        meta = getattr(ds, "file_meta", None)
        compressed = meta is not None and bool(
            getattr(meta.get("TransferSyntaxUID"), "is_compressed", False)
        )
        need = rows * cols * frames * samples * bits // 8
        if not compressed and (rows <= 0 or cols <= 0 or len(ds.PixelData) < need):
            raise ValueError("pixel data shorter than Rows x Columns x frames")
        try:
            arr = np.asarray(ds.pixel_array, dtype=np.float64)
        except Exception as exc:
            raise ValueError(f"pixel data not decodable ({type(exc).__name__})") from None
    if frames > 1:
        arr = arr[0]
    if samples > 1:
        arr = arr.mean(axis=-1)
    if arr.ndim != 2:
        raise ValueError("pixel data is not one 2-D image")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    arr = arr * slope + intercept
    img = scale(resample(arr))
    stats = {
        "rows": rows,
        "columns": cols,
        "source_min": float(arr.min()),
        "source_max": float(arr.max()),
        "pixel_mean": float(img.mean()),
        "pixel_std": float(img.std()),
    }
    return img, stats


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """One pending study -> its output row (pixels, or the error that quarantines it)."""
    out = {k: row.get(k) for k in _DECODED.names if k in row}
    ref = row.get("pixel_data_ref")
    path = local_path(ref) if ref else None
    fail = None
    content = b""
    if path is None:
        fail = (ErrorCode.IMAGE_FILE_UNREADABLE, "no local file reference")
    else:
        try:
            content = path.read_bytes()
        except OSError as exc:
            fail = (ErrorCode.IMAGE_FILE_UNREADABLE, f"file not readable ({type(exc).__name__})")
    if fail is None:
        out["file_sha256"] = hashlib.sha256(content).hexdigest()
        try:
            img, stats = decode(content)
        except ValueError as exc:
            fail = (ErrorCode.IMAGE_PIXELS_UNDECODABLE, str(exc))
        else:
            out.update(stats, pixels=img.astype("<f4").tobytes())
    if fail is not None:
        code, reason = fail
        detail = LakehouseError(code, reason=reason).render()
        out.update(error_code=code.id, error_name=code.name, detail=detail)
    return out


def _decode_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        rows = [decode_row(r) for r in batch.to_pylist()]
        yield pa.RecordBatch.from_pylist(rows, schema=_DECODED)


def studies_with_files(studies: DataFrame, series: DataFrame) -> DataFrame:
    """One row per live study: its first series' first instance and that file's reference."""
    live = studies.where(~F.coalesce(F.col("is_deleted"), F.lit(False)))
    first = Window.partitionBy(*KEYS).orderBy("series_instance_uid")
    s = (
        series.where(~F.coalesce(F.col("is_deleted"), F.lit(False)))
        .where(F.size("pixel_data_refs") > 0)
        .withColumn("_rank", F.row_number().over(first))
        .where("_rank = 1")
        .select(
            *KEYS,
            F.element_at("sop_instance_uids", 1).alias("sop_instance_uid"),
            F.element_at("pixel_data_refs", 1).alias("pixel_data_ref"),
        )
    )
    return live.select(*KEYS, "patient_key", "study_at").join(s, list(KEYS))


def pending_studies(candidates: DataFrame, existing: DataFrame) -> DataFrame:
    """The candidates ``existing`` holds no current row for (same key, file, patient, time)."""
    cond = [candidates[k] == existing[k] for k in KEYS] + [
        candidates[k].eqNullSafe(existing[k]) for k in IDENTITY
    ]
    return candidates.join(existing.select(*KEYS, *IDENTITY), cond, "left_anti")


def build_image_pixels(
    spark: SparkSession,
    *,
    run_id: str,
    studies: str = IMAGING_STUDY.name,
    series: str = IMAGING_SERIES.name,
    output: TableSpec = IMAGE_PIXELS,
    quarantine: TableSpec = IMAGE_PIXELS_QUARANTINE,
) -> ImagePixelsReport:
    """Decode the pixels of the studies not yet in ``output`` (module docstring)."""
    ensure_table(spark, output)
    ensure_table(spark, quarantine)
    candidates = studies_with_files(spark.table(studies), spark.table(series))
    pending = pending_studies(candidates, spark.table(output.name))
    decoded = (
        pending.select(
            *KEYS,
            "sop_instance_uid",
            "patient_key",
            F.unix_micros("study_at").alias("study_at_us"),
            "pixel_data_ref",
        )
        .repartition(max(1, spark.sparkContext.defaultParallelism), *KEYS)
        .mapInArrow(_decode_batches, _DDL)
        .withColumn("study_at", F.timestamp_micros("study_at_us"))
        .withColumn("build_run_id", F.lit(run_id))
        .withColumn("built_at", F.current_timestamp())
        .localCheckpoint(eager=True)
    )
    ok = decoded.where(F.col("error_code").isNull())
    bad = decoded.where(F.col("error_code").isNotNull())
    n_ok, n_bad = ok.count(), bad.count()
    if n_ok:
        upsert(spark, output, ok.select(*output.column_names))
        delete_keys(spark, quarantine, ok.select(*KEYS))
    if n_bad:
        upsert(spark, quarantine, bad.select(*quarantine.column_names))
    return ImagePixelsReport(pending=n_ok + n_bad, decoded=n_ok, quarantined=n_bad)
