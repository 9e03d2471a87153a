"""``audit.events``: the append-only, hash-chained audit log (docs/adr/0004)."""

from __future__ import annotations

from types import MappingProxyType

from pyspark.sql.types import BooleanType, LongType, StringType, TimestampType

from lakehouse.tables.spec import Phi, TableSpec, column

#: Delta keeps the log and removed files this long, so VACUUM never drops audit history early.
RETENTION = "interval 180 days"

AUDIT_EVENTS = TableSpec(
    name="audit.events",
    comment="Audit log: every login, permission change, patient-level read, export, admin "
    "action and break-glass access; append-only and hash-chained (lakehouse audit verify).",
    columns=(
        column(
            "seq", LongType(), "Position in the chain, 1, 2, 3... without gaps.", nullable=False
        ),
        column("event_id", StringType(), "Unique id of the event (UUID4).", nullable=False),
        column("ts", TimestampType(), "When the event happened (UTC instant).", nullable=False),
        column(
            "action",
            StringType(),
            "login_success, login_failure, lockout, logout, permission_change, read, "
            "access_denied, export, admin or break_glass.",
            nullable=False,
        ),
        column("outcome", StringType(), "allowed, denied or failed.", nullable=False),
        column("actor", StringType(), "User name (or service) that acted.", nullable=False),
        column("role", StringType(), "Role the actor acted in."),
        column("session_id", StringType(), "Session of the actor, when there is one."),
        column("target", StringType(), "Table, account or object acted on."),
        column(
            "patient_ref",
            StringType(),
            "Keyed pseudonym of the patient read (HMAC of the patient id, docs/adr/0005); "
            "null when the access is not patient-level.",
            phi=Phi.IDENTIFIER,
        ),
        column("purpose", StringType(), "Stated purpose of use (treatment, research...)."),
        column("row_count", LongType(), "Rows returned or exported."),
        column("versions", StringType(), "Table versions read, table@version, comma-separated."),
        column(
            "break_glass", BooleanType(), "True for break-glass (emergency) access.", nullable=False
        ),
        column("reason", StringType(), "Stated reason (break-glass) or catalogued error code."),
        column("detail", StringType(), "Further facts as canonical JSON (never PHI values)."),
        column("hash_alg", StringType(), "Hash of the chain link: sm3 or sha256.", nullable=False),
        column(
            "prev_hash",
            StringType(),
            "hash of the event at seq - 1 (64 zeros for seq 1).",
            nullable=False,
        ),
        column(
            "hash",
            StringType(),
            "H(prev_hash || canonical JSON of this event), hex.",
            nullable=False,
        ),
    ),
    cluster_by=("seq",),
    append_only=True,
    properties=MappingProxyType(
        {
            "delta.logRetentionDuration": RETENTION,
            "delta.deletedFileRetentionDuration": RETENTION,
            "delta.isolationLevel": "Serializable",
        }
    ),
)
