"""``governance.person_keys``: per-person de-identification secrets (restricted).

One row per person id seen in a de-identified source table: the person's token, date shift
and identifier key, all derived from the keyed hash of the id when the row is first written
and never changed afterwards. The de-identified views join this table; no role reads it.
"""

from __future__ import annotations

from pyspark.sql.types import BinaryType, IntegerType, StringType, TimestampType

from lakehouse.tables.spec import Phi, TableSpec, column

PERSON_KEYS = TableSpec(
    name="governance.person_keys",
    comment="Per-person de-identification secrets: token, date shift and identifier key "
    "(restricted; joined by the deid.* views, read by no role).",
    columns=(
        column(
            "person_id",
            StringType(),
            "Person id as the source tables' person_key holds it (cast to string).",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        column(
            "token",
            StringType(),
            "HMAC-SHA256 of the person id under the deid key (hex): the person in every view.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        column(
            "shift_days",
            IntegerType(),
            "Secret date shift of the person, in days (non-zero, within deid.shift_max_days).",
            nullable=False,
        ),
        column(
            "id_ipad",
            BinaryType(),
            "Secret: inner HMAC pad of the person's identifier key (tokens of other identifiers).",
            nullable=False,
        ),
        column(
            "id_opad",
            BinaryType(),
            "Secret: outer HMAC pad of the person's identifier key.",
            nullable=False,
        ),
        column(
            "key_fingerprint",
            StringType(),
            "First 16 hex of SHA-256 of the deid key the row was derived with (rotation).",
            nullable=False,
        ),
        column("created_at", TimestampType(), "When the row was derived.", nullable=False),
    ),
    keys=("person_id",),
    change_data_feed=False,
)
