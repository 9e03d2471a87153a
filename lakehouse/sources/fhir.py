"""FHIR R4 NDJSON files and bundles -> one record per resource, with Spark functions only.

``*.ndjson`` files: one record per non-blank line (``record_index`` is the 0-based line
number). Other files (``*.json``): one JSON document; a Bundle gives one record per entry
resource (``record_index`` is the entry's position), any other resource one record. JSON is
UTF-8 by definition (a BOM is allowed): a file whose bytes are not UTF-8 is quarantined whole
(LH-ING-010); a line or document that is not a JSON object with a resourceType is quarantined
with LH-ING-014.
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


def _resource(json_text: Column, index: Column, bundle_id: Column) -> list[Column]:
    # One parse of each line or entry: from_json reads the whole text (a malformed one, or
    # one that is no JSON object, gives no resourceType) and takes type and id on the way.
    head = F.from_json(json_text, _HEAD)
    rtype = head["resourceType"]
    name = F.when(rtype.isNull(), ErrorCode.FHIR_INVALID_JSON.name)
    # Only a refused text is parsed again, to say why (CASE WHEN evaluates lazily).
    is_object = F.coalesce(F.json_object_keys(json_text).isNotNull(), F.lit(False))
    reason = F.when(
        rtype.isNull(),
        F.when(json_text.isNull() | ~is_object, "not a JSON object").otherwise("no resourceType"),
    )
    return [
        index.cast("long").alias("record_index"),
        # The raw bytes are what quarantine keeps; a landed resource keeps its raw_json.
        F.when(rtype.isNull(), F.encode(F.coalesce(json_text, F.lit("")), "UTF-8")).alias(
            "raw_bytes"
        ),
        name.alias("error_name"),
        reason.alias("error_reason"),
        F.lit(None).cast("string").alias("error_found"),
        F.lit(None).cast("string").alias("error_expected"),
        rtype.alias("resource_type"),
        head["id"].alias("resource_id"),
        bundle_id.alias("bundle_id"),
        json_text.alias("raw_json"),
    ]


def parse_resources(files: DataFrame) -> DataFrame:
    """Files -> records: one per resource, or the error that quarantines it."""
    content = strip_utf8_bom(F.col("content"))
    df = files.select(*LINEAGE, content.alias("body"), is_utf8(content).alias("utf8"))
    bad = df.where(~F.col("utf8")).select(
        *LINEAGE,
        F.lit(0).cast("long").alias("record_index"),
        F.col("body").alias("raw_bytes"),
        F.lit(ErrorCode.ENCODING_MISMATCH.name).alias("error_name"),
        F.lit(None).cast("string").alias("error_reason"),
        F.lit("not UTF-8").alias("error_found"),
        F.lit("UTF-8 (JSON)").alias("error_expected"),
    )
    good = df.where(F.col("utf8")).select(*LINEAGE, F.col("body").cast("string").alias("text"))
    ndjson = good.where(F.lower(F.col("file_path")).endswith(".ndjson"))
    # Split on LF (a one-character pattern: Java's fast path, no regex) and drop the CR of
    # CRLF line ends (trailing CRs, JSON whitespace): the lines of a \r?\n split, at half
    # the cost.
    lines = ndjson.select(
        *LINEAGE, F.posexplode(F.split(F.col("text"), "\n")).alias("pos", "line")
    ).where(F.trim(F.col("line")) != "")
    line = F.rtrim(F.col("line"), F.lit("\r"))
    from_lines = lines.select(*LINEAGE, *_resource(line, F.col("pos"), F.lit(None)))
    docs = good.where(~F.lower(F.col("file_path")).endswith(".ndjson")).select(
        *LINEAGE, "text", F.from_json("text", _BUNDLE).alias("doc")
    )
    is_bundle = F.col("doc.resourceType") == "Bundle"
    single = docs.where(~is_bundle | F.col("doc.resourceType").isNull()).select(
        *LINEAGE, *_resource(F.col("text"), F.lit(0), F.lit(None))
    )
    entries = (
        docs.where(is_bundle)
        .select(
            *LINEAGE,
            F.col("doc.id").alias("bid"),
            F.posexplode_outer(F.col("doc.entry")).alias("pos", "entry"),
        )
        .where(F.col("entry").isNotNull())
    )
    from_bundles = entries.select(
        *LINEAGE, *_resource(F.col("entry.resource"), F.col("pos"), F.col("bid"))
    )
    return (
        from_lines.unionByName(single)
        .unionByName(from_bundles)
        .unionByName(bad, allowMissingColumns=True)
    )
