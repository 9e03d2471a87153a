"""DICOM files -> one metadata record per file (pydicom), pixel data left in the file.

Every data element but pixel data becomes text in ``tags`` (person names and other strings
decoded with the file's Specific Character Set, GB18030 included); pixel data is referenced
by the landed path, never copied. A file that is truncated (an element's declared length
runs past the end of the file) or that pydicom cannot read as DICOM is quarantined
(LH-ING-016).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql.types import BooleanType, MapType, StringType, StructField, StructType

from lakehouse.errors import ErrorCode
from lakehouse.sources.batches import Record, failed, map_files

INSTANCE_COLUMNS = (
    "sop_instance_uid",
    "sop_class_uid",
    "study_instance_uid",
    "series_instance_uid",
    "modality",
    "specific_character_set",
    "transfer_syntax_uid",
    "patient_name",
    "patient_id",
    "tags",
    "has_pixel_data",
    "pixel_data_ref",
)
_FIELDS = StructType(
    [StructField(c, StringType()) for c in INSTANCE_COLUMNS[:9]]
    + [
        StructField("tags", MapType(StringType(), StringType())),
        StructField("has_pixel_data", BooleanType()),
        StructField("pixel_data_ref", StringType()),
    ]
)
_DEFLATED = "1.2.840.10008.1.2.1.99"
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_MAX_TEXT = 4096


def _truncated(ds: Any, size: int, deflated: bool) -> str | None:
    """The tag of the first element whose declared length runs past the file, if any."""
    from pydicom.dataelem import RawDataElement

    for tag, el in ds._dict.items():
        if not isinstance(el, RawDataElement) or el.length == _UNDEFINED:
            continue
        if el.value is None and not deflated and el.value_tell + el.length > size:
            return f"({tag.group:04X},{tag.element:04X}) runs past the end of the file"
        if el.value is not None and len(el.value) < el.length:
            return f"({tag.group:04X},{tag.element:04X}) is shorter than declared"
    return None


def _text(el: Any) -> str:
    if el.VR == "SQ":
        return f"<sequence of {len(el.value)} items>"
    value = el.value
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return str(value)[:_MAX_TEXT]


def parse_instance(content: bytes, path: str) -> Iterator[Record]:
    """One DICOM file -> one metadata record (or its quarantine)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            try:
                ds = pydicom.dcmread(io.BytesIO(content), defer_size=1024)
            except InvalidDicomError:
                ds = pydicom.dcmread(io.BytesIO(content), defer_size=1024, force=True)
                if "SOPClassUID" not in ds and "SOPInstanceUID" not in ds:
                    yield failed(ErrorCode.DICOM_UNREADABLE, content, reason="no DICOM header")
                    return
            meta = getattr(ds, "file_meta", None)
            tsuid = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
            problem = _truncated(ds, len(content), tsuid == _DEFLATED)
            if problem:
                yield failed(ErrorCode.DICOM_UNREADABLE, content, reason=problem)
                return
            tags: dict[str, str] = {}
            for el in ds:
                if el.tag == _PIXEL_DATA:
                    continue
                tags[f"{el.tag.group:04X},{el.tag.element:04X} {el.keyword}".strip()] = _text(el)
            has_pixels = _PIXEL_DATA in ds
        except Exception as exc:  # pydicom raises many types for damaged files
            yield failed(ErrorCode.DICOM_UNREADABLE, content, reason=type(exc).__name__)
            return

    def get(keyword: str) -> str | None:
        value = ds.get(keyword)
        return None if value is None else str(value)

    charset = ds.get("SpecificCharacterSet")
    yield {
        "record_index": 0,
        "raw_bytes": b"",
        "sop_instance_uid": get("SOPInstanceUID"),
        "sop_class_uid": get("SOPClassUID"),
        "study_instance_uid": get("StudyInstanceUID"),
        "series_instance_uid": get("SeriesInstanceUID"),
        "modality": get("Modality"),
        "specific_character_set": None
        if charset is None
        else "\\".join(charset)
        if isinstance(charset, list | tuple) or type(charset).__name__ == "MultiValue"
        else str(charset),
        "transfer_syntax_uid": tsuid or None,
        "patient_name": get("PatientName"),
        "patient_id": get("PatientID"),
        "tags": tags,
        "has_pixel_data": has_pixels,
        "pixel_data_ref": path if has_pixels else None,
    }


def parse_instances(files: DataFrame) -> DataFrame:
    """Files -> records: one metadata row per DICOM file, or the error that quarantines it."""
    return map_files(files, parse_instance, _FIELDS, fallback=ErrorCode.DICOM_UNREADABLE)
