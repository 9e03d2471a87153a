"""FHIR R4 NDJSON files and bundles -> one record per resource, with Spark functions only.

``*.ndjson`` files: one record per non-blank line (``record_index`` is the 0-based line
number). Other files (``*.json``): one JSON document; a Bundle gives one record per entry
resource (``record_index`` is the entry's position), any other resource one record. JSON is
UTF-8 by definition (a BOM is allowed): a file whose bytes are not UTF-8 is quarantined whole
(LH-ING-010); a line or document that is not a JSON object with a resourceType is quarantined
with LH-ING-014.

One pass over the files: each file's content is checked, split and parsed by one chain of
operators (no branch per kind of file re-reading the content), and each line's JSON is
parsed once.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode
from lakehouse.sources.encoding import is_utf8, strip_utf8_bom
from lakehouse.sources.records import LINEAGE

RESOURCE_COLUMNS = ("resource_type", "resource_id", "bundle_id", "raw_json")
_BUNDLE = "struct<resourceType:string,id:string,entry:array<struct<resource:string>>>"
_HEAD = "struct<resourceType:string,id:string>"
#: from_json's default mode, stated: Spark's optimizer splits ``from_json(x).a`` and
#: ``from_json(x).b`` into two parses of x, one per field, unless an option is given
#: (OptimizeCsvJsonExprs); with it, type and id come from one parse.
_ONE_PARSE = {"mode": "PERMISSIVE"}
_LINE, _DOC, _NOT_UTF8 = "line", "doc", "not-utf8"


def _null() -> Column:
    return F.lit(None).cast("string")


def _item(text: Column, bundle_id: Column) -> Column:
    """A resource's text, its bundle's id and its head (type and id), parsed once."""
    return F.struct(
        text.alias("text"),
        bundle_id.alias("bundle_id"),
        F.from_json(text, _HEAD, _ONE_PARSE).alias("head"),
    )


def parse_resources(files: DataFrame) -> DataFrame:
    """Files -> records: one per resource, or the error that quarantines it."""
    body = strip_utf8_bom(F.col("content"))
    utf8 = is_utf8(body)
    text = body.cast("string")
    kind = (
        F.when(~utf8, F.lit(_NOT_UTF8))
        .when(F.lower(F.col("file_path")).endswith(".ndjson"), F.lit(_LINE))
        .otherwise(F.lit(_DOC))
    )
    # The pieces of a file: its lines (split on LF, a one-character pattern: Java's fast
    # path, no regex), its whole text, or one empty piece for a file that is not UTF-8 (a
    # file whose check is null gives none). The content itself is not carried past the
    # split: only a refused file's bytes are, for its quarantine record.
    pieces = (
        F.when(~utf8, F.array(_null()))
        .when(kind == _LINE, F.split(text, "\n"))
        .when(utf8, F.array(text))
    )
    # Columns first, exploded after, so the check runs once per file, not once per line.
    # The coalesce changes nothing (no pieces, no rows) but keeps the optimizer from adding
    # a `size(pieces) > 0` filter below the projection, which would split the text twice.
    split = (
        files.select(
            *LINEAGE,
            kind.alias("kind"),
            F.when(~utf8, body).alias("file_bytes"),
            pieces.alias("pieces"),
        )
        .select(
            *LINEAGE,
            "kind",
            "file_bytes",
            F.posexplode(F.coalesce("pieces", F.array())).alias("piece_index", "piece"),
        )
        # Blank lines are no records (trim drops spaces only, as it always has).
        .where((F.col("kind") != _LINE) | (F.trim(F.col("piece")) != ""))
    )
    # Each piece's resources: a line (without the CR of a CRLF end), a document, or a
    # Bundle's entries (a null entry is none). Parsed inside the generator's input, so the
    # head of each resource is a column after it: a later filter on the error (say, landed
    # rows only) reads that column instead of parsing the JSON again.
    piece = F.col("piece")
    doc = F.from_json(piece, _BUNDLE, _ONE_PARSE)
    items = (
        F.when(F.col("kind") == _NOT_UTF8, F.array(_item(_null(), _null())))
        .when(F.col("kind") == _LINE, F.array(_item(F.rtrim(piece, F.lit("\r")), _null())))
        .when(
            doc["resourceType"] == "Bundle",
            F.transform(
                doc["entry"],
                lambda e: F.when(e.isNotNull(), _item(e["resource"], doc["id"])),
            ),
        )
        .otherwise(F.array(_item(piece, _null())))
    )
    records = split.select(
        *LINEAGE,
        "kind",
        "file_bytes",
        "piece_index",
        F.posexplode(items).alias("item_index", "item"),
    ).where(F.col("item").isNotNull())
    return records.select(
        *LINEAGE,
        *_columns(
            F.col("kind"),
            F.col("file_bytes"),
            F.col("piece_index"),
            F.col("item_index"),
            F.col("item"),
        ),
    )


def _columns(
    kind: Column, file_bytes: Column, piece_index: Column, item_index: Column, item: Column
) -> list[Column]:
    not_utf8 = kind == _NOT_UTF8
    json_text = item["text"]
    rtype = item["head"]["resourceType"]
    refused = ~not_utf8 & rtype.isNull()
    # Only a refused text is parsed again, to say why (CASE WHEN evaluates lazily).
    is_object = F.coalesce(F.json_object_keys(json_text).isNotNull(), F.lit(False))
    reason = F.when(
        refused,
        F.when(json_text.isNull() | ~is_object, "not a JSON object").otherwise("no resourceType"),
    )
    return [
        F.when(kind == _LINE, piece_index).otherwise(item_index).cast("long").alias("record_index"),
        # The raw bytes are what quarantine keeps; a landed resource keeps its raw_json.
        F.when(not_utf8, file_bytes)
        .when(refused, F.encode(F.coalesce(json_text, F.lit("")), "UTF-8"))
        .alias("raw_bytes"),
        F.when(not_utf8, ErrorCode.ENCODING_MISMATCH.name)
        .when(refused, ErrorCode.FHIR_INVALID_JSON.name)
        .alias("error_name"),
        reason.alias("error_reason"),
        F.when(not_utf8, "not UTF-8").alias("error_found"),
        F.when(not_utf8, "UTF-8 (JSON)").alias("error_expected"),
        rtype.alias("resource_type"),
        item["head"]["id"].alias("resource_id"),
        item["bundle_id"].alias("bundle_id"),
        json_text.alias("raw_json"),
    ]
