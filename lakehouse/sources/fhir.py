"""FHIR R4 NDJSON files and bundles -> one record per resource, with Spark functions only.

``*.ndjson`` files: one record per non-blank line (``record_index`` is the 0-based line
number). Other files (``*.json``): one JSON document; a Bundle gives one record per entry
resource (``record_index`` is the entry's position), any other resource one record. JSON is
UTF-8 by definition (a BOM is allowed): a file whose bytes are not UTF-8 is quarantined whole
(LH-ING-010); a line or document that is not a JSON object with a resourceType is quarantined
with LH-ING-014.

One pass over the files: each file's content is checked and cut into its resources (lines,
a Bundle's entries or the document) once per file and exploded once; each resource's JSON
is parsed once for its head (a ``*.json`` document once more, whole, to cut a Bundle into
its entries). Spark 4.2 evaluates ``from_json``
interpreted (it is a ``CodegenFallback``): an operator holding it leaves whole-stage code
generation, so it stands alone in a generator of its own, which also keeps a later filter on
the outcome from being pushed below it and parsing the JSON again.
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


def _without_cr(line: Column) -> Column:
    """``line`` without the CRs at its end (of a CRLF line end), as ``rtrim(line, '\\r')``.

    ``rtrim`` with a trim string costs a pass over the line and two int arrays of its length
    (Spark's trimRight): it runs only for a line that ends with two CRs or more. A line that
    ends with one loses its last byte (a CR is one byte in UTF-8), a copy and nothing else.
    """
    last_byte_cut = F.substring(line.cast("binary"), F.lit(1), F.octet_length(line) - 1)
    return (
        F.when(~line.endswith("\r"), line)
        .when(~line.endswith("\r\r"), last_byte_cut.cast("string"))
        .otherwise(F.rtrim(line, F.lit("\r")))
    )


def parse_resources(files: DataFrame) -> DataFrame:
    """Files -> records: one per resource, or the error that quarantines it."""
    body = strip_utf8_bom(F.col("content"))
    utf8 = is_utf8(body)
    kind = (
        F.when(~utf8, F.lit(_NOT_UTF8))
        .when(F.lower(F.col("file_path")).endswith(".ndjson"), F.lit(_LINE))
        .otherwise(F.lit(_DOC))
    )
    checked = files.select(
        *LINEAGE,
        kind.alias("kind"),
        utf8.alias("utf8"),
        F.when(~utf8, body).alias("file_bytes"),
        body.cast("string").alias("text"),
    )
    # A document is parsed once, as a Bundle (a projection of its own: the pieces below use
    # it three times, and Spark does not merge projections that would repeat a parse).
    text = F.col("text")
    documents = checked.select(
        "*", F.when(F.col("kind") == _DOC, F.from_json(text, _BUNDLE, _ONE_PARSE)).alias("doc")
    )
    # The pieces of a file, each a struct holding one resource's text: its lines (split on
    # LF, a one-character pattern: Java's fast path, no regex), a Bundle's entries (a null
    # entry is a null piece, dropped below, its position kept), the document, or one empty
    # piece for a file that is not UTF-8 (a file whose check is null gives none). The content
    # itself is not carried past the split: only a refused file's bytes are, for its
    # quarantine record.
    doc = F.col("doc")
    is_bundle = doc["resourceType"] == "Bundle"
    pieces = (
        F.when(~F.col("utf8"), F.array(F.struct(_null().alias("resource"))))
        .when(F.col("kind") == _LINE, F.arrays_zip(F.split(text, "\n").alias("resource")))
        .when(is_bundle, doc["entry"])
        .when(F.col("utf8"), F.array(F.struct(text.alias("resource"))))
    )
    cut = documents.select(
        *LINEAGE,
        "kind",
        "file_bytes",
        F.when(is_bundle, doc["id"]).alias("bundle_id"),
        pieces.alias("pieces"),
    )
    # Exploded once, over per-file columns: the check, the split and the bundle's id are
    # computed once per file, not once per line (an expression in the same select as the
    # generator would be evaluated per output row). The coalesce changes nothing (no pieces,
    # no rows) but keeps the optimizer from adding a `size(pieces) > 0` filter below the
    # projection, which would split the text twice.
    exploded = cut.select(
        *LINEAGE,
        "kind",
        "file_bytes",
        "bundle_id",
        F.posexplode(F.coalesce("pieces", F.array())).alias("record_index", "piece"),
    )
    # Blank lines are no records (trim drops spaces only, as it always has); a line loses
    # the CR of a CRLF end.
    piece = F.col("piece.resource")
    resources = exploded.where(
        F.col("piece").isNotNull() & ((F.col("kind") != _LINE) | (F.trim(piece) != ""))
    ).select(
        *LINEAGE,
        "kind",
        "file_bytes",
        "bundle_id",
        "record_index",
        F.when(F.col("kind") == _LINE, _without_cr(piece)).otherwise(piece).alias("raw_json"),
    )
    # Each resource's head (type and id), parsed once, as a generator's output: a later
    # filter on the error (say, landed rows only) reads that column instead of parsing the
    # JSON again. A text that is no JSON gives a null head, inlined as nulls.
    heads = resources.select(
        "*",
        F.inline(F.array(F.from_json(F.col("raw_json"), _HEAD, _ONE_PARSE))).alias(
            "resource_type", "resource_id"
        ),
    )
    return heads.select(*LINEAGE, *_columns())


def _columns() -> list[Column]:
    kind, json_text, rtype = F.col("kind"), F.col("raw_json"), F.col("resource_type")
    not_utf8 = kind == _NOT_UTF8
    refused = ~not_utf8 & rtype.isNull()
    # Only a refused text is parsed again, to say why (CASE WHEN evaluates lazily).
    is_object = F.coalesce(F.json_object_keys(json_text).isNotNull(), F.lit(False))
    reason = F.when(
        refused,
        F.when(json_text.isNull() | ~is_object, "not a JSON object").otherwise("no resourceType"),
    )
    return [
        F.col("record_index").cast("long").alias("record_index"),
        # The raw bytes are what quarantine keeps; a landed resource keeps its raw_json.
        F.when(not_utf8, F.col("file_bytes"))
        .when(refused, F.encode(F.coalesce(json_text, F.lit("")), "UTF-8"))
        .alias("raw_bytes"),
        F.when(not_utf8, ErrorCode.ENCODING_MISMATCH.name)
        .when(refused, ErrorCode.FHIR_INVALID_JSON.name)
        .alias("error_name"),
        reason.alias("error_reason"),
        F.when(not_utf8, "not UTF-8").alias("error_found"),
        F.when(not_utf8, "UTF-8 (JSON)").alias("error_expected"),
        rtype.alias("resource_type"),
        F.col("resource_id"),
        F.col("bundle_id"),
        json_text.alias("raw_json"),
    ]
