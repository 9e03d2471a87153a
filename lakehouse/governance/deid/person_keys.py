"""Per-person secrets of the de-identified views, kept in ``governance.person_keys``.

For each person id: a token (HMAC-SHA256 of the id under the deid key), a date shift in
``[-N, -1] ∪ [1, N]`` days and an identifier key (whose HMAC pads the views use to tokenize
the person's other identifiers in SQL). All three derive from the keyed hash of the id, so
they are deterministic; they are written once (insert-only MERGE of ids not yet stored) and
never change, even if the key is later rotated.

The key is applied here, in Python over Arrow batches, and never in SQL: a key in a Spark
expression would be a literal in query plans, the UI and event logs, and in a view's text.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import reduce

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, IntegerType, StringType, StructField, StructType

from lakehouse.tables.governance.person_keys import PERSON_KEYS
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import WriteReport, ensure_table, upsert

BLOCK = 64  # SHA-256 block size: the HMAC pads are one block
_IPAD = bytes(b ^ 0x36 for b in range(256))  # byte-wise XOR tables of RFC 2104's pads
_OPAD = bytes(b ^ 0x5C for b in range(256))
_DERIVED = StructType(
    [
        StructField("person_id", StringType(), False),
        StructField("token", StringType(), False),
        StructField("shift_days", IntegerType(), False),
        StructField("id_ipad", BinaryType(), False),
        StructField("id_opad", BinaryType(), False),
        StructField("key_fingerprint", StringType(), False),
    ]
)


@dataclass(frozen=True)
class PersonSecrets:
    """What one person id derives to."""

    token: str
    shift_days: int
    id_ipad: bytes
    id_opad: bytes


def _mac(key: bytes, purpose: str, person_id: str) -> bytes:
    return hmac.new(key, f"{purpose}|{person_id}".encode(), hashlib.sha256).digest()


def derive(key: bytes, person_id: str, max_shift: int) -> PersonSecrets:
    """The person's token, shift and identifier-key pads (pure; the oracle of the tests)."""
    token = _mac(key, "token", person_id).hex()
    h = _mac(key, "shift", person_id)
    magnitude = int.from_bytes(h[:8], "big") % max_shift + 1
    shift = -magnitude if h[8] & 1 else magnitude
    id_key = _mac(key, "identifier", person_id).ljust(BLOCK, b"\0")
    return PersonSecrets(token, shift, id_key.translate(_IPAD), id_key.translate(_OPAD))


def identifier_token(secrets: PersonSecrets, value: str) -> str:
    """HMAC-SHA256 of ``value`` under the person's identifier key, as the views compute it."""
    inner = hashlib.sha256(secrets.id_ipad + value.encode()).digest()
    return hashlib.sha256(secrets.id_opad + inner).hexdigest()


def key_fingerprint(key: bytes) -> str:
    """Names a key without revealing it (first 16 hex of its SHA-256)."""
    return hashlib.sha256(key).hexdigest()[:16]


def _derive_batches(
    key: bytes, max_shift: int
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    fingerprint = key_fingerprint(key)

    def derive_all(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            ids = batch.column(0).to_pylist()
            rows = [derive(key, pid, max_shift) for pid in ids]
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(ids, pa.string()),
                    pa.array([r.token for r in rows], pa.string()),
                    pa.array([r.shift_days for r in rows], pa.int32()),
                    pa.array([r.id_ipad for r in rows], pa.binary()),
                    pa.array([r.id_opad for r in rows], pa.binary()),
                    pa.array([fingerprint] * len(ids), pa.string()),
                ],
                names=_DERIVED.fieldNames(),
            )

    return derive_all


def person_ids(spark: SparkSession, sources: Sequence[TableSpec]) -> DataFrame | None:
    """Distinct non-null person ids of the sources that name a person key (as strings)."""
    frames = [
        spark.table(s.name)
        .select(F.col(f"`{s.person_key}`").cast("string").alias("person_id"))
        .where(F.col("person_id").isNotNull())
        for s in sources
        if s.person_key
    ]
    if not frames:
        return None
    return reduce(DataFrame.unionByName, frames).distinct()


def refresh_person_keys(
    spark: SparkSession, sources: Sequence[TableSpec], *, key: bytes, max_shift: int
) -> WriteReport | None:
    """Add the persons of ``sources`` not yet in ``governance.person_keys``; None if none."""
    ensure_table(spark, PERSON_KEYS)
    ids = person_ids(spark, sources)
    if ids is None:
        return None
    new = ids.join(spark.table(PERSON_KEYS.name).select("person_id"), "person_id", "left_anti")
    # mapInArrow, not a SQL expression: the key must stay out of plans (module docstring).
    derived = new.mapInArrow(_derive_batches(key, max_shift), _DERIVED)
    rows = derived.withColumn("created_at", F.current_timestamp())
    return upsert(spark, PERSON_KEYS, rows, insert_only=True)
