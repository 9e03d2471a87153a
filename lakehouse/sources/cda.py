"""CDA R2 / WS/T 500 XML documents -> one record per file, parsed safely.

Parsing uses defusedxml with ``forbid_dtd=True``: a DOCTYPE, entity declaration or external
reference is refused before anything is resolved (XXE never reaches the network or the
disk) and the document is quarantined (LH-ING-013). The XML declaration's encoding (UTF-8
when absent) must match the bytes (LH-ING-010); a document that is not well-formed is
quarantined with its line and column (LH-ING-012).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pyspark.sql import DataFrame
from pyspark.sql.types import StringType, StructField, StructType

from lakehouse.errors import ErrorCode
from lakehouse.sources.batches import Record, failed, map_files

DOCUMENT_COLUMNS = (
    "root_element",
    "document_id",
    "document_code",
    "code_system",
    "title",
    "effective_time",
    "encoding",
    "raw_xml",
)
_FIELDS = StructType([StructField(c, StringType()) for c in DOCUMENT_COLUMNS])
_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]{1,40})[\"']")
_GB = re.compile(r"GB|18030|2312", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(root: Element, name: str) -> Element | None:
    return next((c for c in root if isinstance(c.tag, str) and _local(c.tag) == name), None)


def _decode(content: bytes) -> tuple[str | None, str, str | None]:
    """(text, encoding used, declared name) or text None when the bytes disagree."""
    body = content[3:] if content.startswith(_BOM) else content
    m = _DECL.match(body)
    declared = m.group(1).decode("ascii") if m else None
    try:
        return body.decode("utf-8"), "UTF-8", declared
    except UnicodeDecodeError:
        pass
    if declared and _GB.search(declared):
        try:
            return body.decode("gb18030"), "GB18030", declared
        except UnicodeDecodeError:
            return None, "not GB18030", declared
    return None, "not UTF-8", declared


def parse_document(content: bytes, path: str) -> Iterator[Record]:
    """One CDA file -> one record (or its quarantine)."""
    text, encoding, declared = _decode(content)
    if text is None or (
        declared and _GB.search(declared) and encoding == "UTF-8" and not content.isascii()
    ):
        yield failed(
            ErrorCode.ENCODING_MISMATCH,
            content,
            found=encoding if text is None else "UTF-8",
            expected=declared or "UTF-8 (none declared)",
        )
        return
    # The text is decoded already: hand the parser UTF-8 and say so in the declaration.
    utf8 = re.sub(r"^(\s*<\?xml[^>]*?encoding\s*=\s*[\"'])[^\"']*", r"\1UTF-8", text, count=1)
    try:
        root = fromstring(utf8.encode("utf-8"), forbid_dtd=True)
    except DefusedXmlException as exc:
        yield failed(ErrorCode.XML_FORBIDDEN_CONSTRUCT, content, reason=type(exc).__name__)
        return
    except ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        yield failed(ErrorCode.XML_NOT_WELL_FORMED, content, reason=f"line {line}, column {col}")
        return
    doc_id, code, title, eff = (_child(root, n) for n in ("id", "code", "title", "effectiveTime"))
    yield {
        "record_index": 0,
        "raw_bytes": content,
        "root_element": _local(str(root.tag)),
        "document_id": None
        if doc_id is None
        else "^".join(v for v in (doc_id.get("root"), doc_id.get("extension")) if v),
        "document_code": None if code is None else code.get("code"),
        "code_system": None if code is None else code.get("codeSystem"),
        "title": None if title is None else "".join(title.itertext()).strip(),
        "effective_time": None if eff is None else eff.get("value"),
        "encoding": encoding if not content.isascii() else "US-ASCII",
        "raw_xml": text,
    }


def parse_documents(files: DataFrame) -> DataFrame:
    """Files -> records: one CDA document each, or the error that quarantines it."""
    return map_files(files, parse_document, _FIELDS, fallback=ErrorCode.XML_NOT_WELL_FORMED)
