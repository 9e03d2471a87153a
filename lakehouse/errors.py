"""The one error catalog and exception hierarchy of the lakehouse.

Every error the project raises on purpose is a :class:`LakehouseError` carrying an
:class:`ErrorCode`. A code has a stable identifier (``LH-<area>-<nnn>``), a message template,
the HTTP status a service answers with, and the exit status a command line ends with. The
catalog is rendered to ``docs/error-codes.md`` (``lakehouse docs``); a test fails when that
file is stale.

Messages name tables, columns, files, settings and counts: never a value from patient data.
Template parameters are therefore restricted to the names listed in :data:`SAFE_PARAMS`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import Enum, unique
from typing import Any


@dataclass(frozen=True)
class ErrorDef:
    """One catalogued error: identifier, message template, HTTP status and exit status."""

    id: str
    template: str
    http_status: int
    exit_status: int
    retryable: bool = False
    remedy: str = ""


#: Template parameters a message may carry. None of them ever holds patient data.
SAFE_PARAMS = frozenset(
    {
        "setting",
        "value_kind",
        "path",
        "file",
        "files",
        "table",
        "column",
        "columns",
        "expected",
        "found",
        "count",
        "key",
        "keys",
        "required",
        "name",
        "names",
        "reason",
        "detail",
        "url",
        "version",
        "attempts",
        "operation",
        "command",
        "stage",
        "role",
        "seq",
    }
)

# Exit statuses follow the BSD sysexits convention where one fits.
EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_UNAVAILABLE, EX_SOFTWARE, EX_IOERR = 64, 65, 66, 69, 70, 74
EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 75, 77, 78


@unique
class ErrorCode(Enum):
    """The catalog. Identifiers are stable: never reuse or renumber one."""

    # --- configuration and environment (LH-CFG, LH-ENV) ---
    CONFIG_INVALID = ErrorDef(
        "LH-CFG-001",
        "Setting {setting} is invalid: {reason}.",
        500,
        EX_CONFIG,
        remedy="Fix the LAKEHOUSE_* environment variable named; `lakehouse settings` "
        "prints the effective values.",
    )
    JAVA_MISSING = ErrorDef(
        "LH-ENV-001",
        "No Java runtime found ({detail}). Spark needs Java {required}.",
        500,
        EX_UNAVAILABLE,
        remedy="Install OpenJDK 17 (Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless`) "
        "or point JAVA_HOME at one.",
    )
    JAVA_VERSION_UNSUPPORTED = ErrorDef(
        "LH-ENV-002",
        "Java {found} found at {path}; Spark {version} needs Java {required}.",
        500,
        EX_UNAVAILABLE,
        remedy="Install OpenJDK 17 and set JAVA_HOME to it.",
    )
    JARS_MISSING = ErrorDef(
        "LH-ENV-003",
        "Required JVM jars are missing from {path}: {names}.",
        500,
        EX_UNAVAILABLE,
        remedy="Run `make jars` (Maven copies them from infra/jars/pom.xml) or set "
        "LAKEHOUSE_SPARK__JARS_DIR.",
    )
    STORAGE_UNAVAILABLE = ErrorDef(
        "LH-ENV-004",
        "Storage location {path} is not usable: {reason}.",
        500,
        EX_IOERR,
        remedy="Create the folder or fix its permissions, or set LAKEHOUSE_DATA_DIR.",
    )
    CATALOG_UNAVAILABLE = ErrorDef(
        "LH-ENV-005",
        "The table catalog ({name}) cannot be reached: {reason}.",
        503,
        EX_UNAVAILABLE,
        retryable=True,
        remedy="An embedded Derby metastore admits one process: stop the other one, or use "
        "a metastore server (LAKEHOUSE_METASTORE__KIND=derby-server or jdbc).",
    )
    SPARK_START_FAILED = ErrorDef(
        "LH-ENV-006",
        "Spark could not start ({reason}).",
        500,
        EX_UNAVAILABLE,
        remedy="Run `lakehouse doctor`; it checks Java, jars, storage and the catalog.",
    )
    DEPENDENCY_MISSING = ErrorDef(
        "LH-ENV-007",
        "Python package {name} is missing or not the pinned version ({detail}).",
        500,
        EX_UNAVAILABLE,
        remedy="Run `make venv` to install the locked dependencies.",
    )
    TIMEZONE_UNAVAILABLE = ErrorDef(
        "LH-ENV-008",
        "Time zone {name} cannot be made the process's local zone: {reason}.",
        500,
        EX_CONFIG,
        remedy="Set LAKEHOUSE_TIMEZONE to an IANA zone name (Asia/Shanghai) and install "
        "the time zone database (Debian: `apt-get install tzdata`; `make venv` installs the "
        "tzdata Python package, used as a fallback, with pandas).",
    )

    # --- table specs and writes (LH-TBL) ---
    TABLE_SPEC_INVALID = ErrorDef(
        "LH-TBL-001",
        "Table spec {table} is invalid: {reason}.",
        500,
        EX_SOFTWARE,
    )
    TABLE_SCHEMA_INCOMPATIBLE = ErrorDef(
        "LH-TBL-002",
        "Table {table} column {column} is {found} in storage but {expected} in its spec; "
        "the change is not a safe widening.",
        409,
        EX_DATAERR,
        remedy="Write a migration (new column, backfill, then switch readers); Delta cannot "
        "narrow or change a column's type in place.",
    )
    INPUT_SCHEMA_MISMATCH = ErrorDef(
        "LH-TBL-003",
        "Rows for {table} do not match its spec: {reason} ({columns}).",
        500,
        EX_DATAERR,
    )
    DUPLICATE_KEYS = ErrorDef(
        "LH-TBL-004",
        "Input for {table} holds {count} rows that share keys {keys} and the spec names no "
        "sequence column to choose between them.",
        500,
        EX_DATAERR,
        remedy="Give the spec a sequence_by column, or deduplicate upstream.",
    )
    NULL_KEYS = ErrorDef(
        "LH-TBL-005",
        "Input for {table} holds {count} rows with a null key column ({keys}).",
        500,
        EX_DATAERR,
    )
    WRITE_CONFLICT = ErrorDef(
        "LH-TBL-006",
        "Concurrent write to {table} conflicted with this {operation} after {attempts} attempts.",
        409,
        EX_TEMPFAIL,
        retryable=True,
        remedy="Retry the job; a persistent conflict means two jobs write the same partition.",
    )
    TABLE_NOT_FOUND = ErrorDef(
        "LH-TBL-007",
        "Table {table} does not exist in the catalog.",
        404,
        EX_NOINPUT,
        remedy="Run the job that creates it (`lakehouse demo` runs all of them).",
    )

    # --- jobs (LH-JOB) ---
    JOB_FAILED = ErrorDef(
        "LH-JOB-001",
        "Stage {stage} failed: {reason}.",
        500,
        EX_SOFTWARE,
    )
    UNKNOWN_STAGE = ErrorDef(
        "LH-JOB-002",
        "Unknown stage {name}; known stages: {names}.",
        400,
        EX_USAGE,
    )

    # --- ingestion (LH-ING) ---
    UNKNOWN_SOURCE = ErrorDef(
        "LH-ING-001",
        "Unknown source {name}; known sources: {names}.",
        400,
        EX_USAGE,
    )
    LANDING_UNAVAILABLE = ErrorDef(
        "LH-ING-002",
        "Landing folder {path} is not usable: {reason}.",
        500,
        EX_NOINPUT,
        remedy="Run the synthetic hospital (`lakehouse demo --stage synth`) or set "
        "LAKEHOUSE_INGEST__LANDING_ROOT.",
    )
    DUPLICATE_FILE = ErrorDef(
        "LH-ING-003",
        "File {file} has the same content (SHA-256) as a file already landed; skipped.",
        409,
        EX_DATAERR,
    )
    ZERO_BYTE_FILE = ErrorDef(
        "LH-ING-004",
        "File {file} is empty (zero bytes).",
        422,
        EX_DATAERR,
    )
    HL7_NO_MSH = ErrorDef(
        "LH-ING-005",
        "HL7 v2 record {count} of {file} has segments but no MSH header ({found}).",
        422,
        EX_DATAERR,
    )
    HL7_BAD_ENCODING_CHARS = ErrorDef(
        "LH-ING-006",
        "HL7 v2 record {count} of {file}: MSH field separator or encoding characters are "
        "invalid ({reason}).",
        422,
        EX_DATAERR,
    )
    HL7_TRUNCATED = ErrorDef(
        "LH-ING-007",
        "HL7 v2 record {count} of {file} is truncated ({reason}).",
        422,
        EX_DATAERR,
    )
    HL7_BAD_ENVELOPE = ErrorDef(
        "LH-ING-008",
        "HL7 v2 batch envelope of {file} is invalid ({reason}); its messages are quarantined.",
        422,
        EX_DATAERR,
    )
    HL7_MSH_INVALID = ErrorDef(
        "LH-ING-009",
        "HL7 v2 record {count} of {file}: required MSH fields are empty ({names}).",
        422,
        EX_DATAERR,
    )
    ENCODING_MISMATCH = ErrorDef(
        "LH-ING-010",
        "Record {count} of {file} declares encoding {expected} but its bytes are {found}.",
        422,
        EX_DATAERR,
    )
    ENCODING_UNDETECTED = ErrorDef(
        "LH-ING-011",
        "Record {count} of {file} is neither valid UTF-8 nor valid GB18030.",
        422,
        EX_DATAERR,
    )
    XML_NOT_WELL_FORMED = ErrorDef(
        "LH-ING-012",
        "XML document {file} is not well-formed ({reason}).",
        422,
        EX_DATAERR,
    )
    XML_FORBIDDEN_CONSTRUCT = ErrorDef(
        "LH-ING-013",
        "XML document {file} carries a DTD or entity declaration ({reason}); entities are "
        "never resolved.",
        422,
        EX_DATAERR,
    )
    FHIR_INVALID_JSON = ErrorDef(
        "LH-ING-014",
        "FHIR record {count} of {file} is not a JSON object with a resourceType ({reason}).",
        422,
        EX_DATAERR,
    )
    CSV_RAGGED_ROW = ErrorDef(
        "LH-ING-015",
        "CSV row {count} of {file} has {found} fields; the header has {expected}.",
        422,
        EX_DATAERR,
    )
    DICOM_UNREADABLE = ErrorDef(
        "LH-ING-016",
        "DICOM file {file} is truncated or unreadable ({reason}).",
        422,
        EX_DATAERR,
    )

    # --- database extraction over JDBC (LH-JDB) ---
    JDBC_UNREACHABLE = ErrorDef(
        "LH-JDB-001",
        "The {name} source database cannot be reached: {reason}.",
        503,
        EX_UNAVAILABLE,
        retryable=True,
        remedy="Check that the database is up and reachable from the Spark driver and "
        "executors, and the his.jdbc_url, user and password settings (never logged).",
    )
    JDBC_URL_INVALID = ErrorDef(
        "LH-JDB-002",
        "Setting {setting} is not a usable JDBC URL: {reason}.",
        500,
        EX_CONFIG,
        remedy="A JDBC URL starts jdbc:<dialect>: (jdbc:postgresql://host:5432/db, "
        "jdbc:sqlite:/path/his.sqlite); for other dialects set his.driver and add the jar.",
    )
    JDBC_TABLE_MISSING = ErrorDef(
        "LH-JDB-003",
        "Source table {table} does not exist in the {name} database (or is not readable).",
        404,
        EX_NOINPUT,
        remedy="Fix his.tables, or grant the extraction user SELECT on the table.",
    )
    JDBC_COLUMNS_MISSING = ErrorDef(
        "LH-JDB-004",
        "Source table {table} lacks columns {columns} (watermark column {column}).",
        422,
        EX_DATAERR,
        remedy="Every extracted table needs its key, the watermark column "
        "(his.watermark_column) and the columns of its bronze spec.",
    )
    JDBC_TABLE_UNKNOWN = ErrorDef(
        "LH-JDB-005",
        "Source table {table} has no bronze table spec; known tables: {names}.",
        400,
        EX_USAGE,
        remedy="Remove it from his.tables, or add its TableSpec in lakehouse/tables/bronze/his.py.",
    )
    JDBC_VALUE_UNREADABLE = ErrorDef(
        "LH-JDB-006",
        "Source table {table}: {count} values of column {column} cannot be read as {expected}.",
        422,
        EX_DATAERR,
        remedy="The table is skipped (its watermark stays); fix the source values or the "
        "column's type in the bronze spec.",
    )

    # --- HL7 v2 landing findings (an ingest code: counted apart from records) ---
    HL7_TRAILER_COUNT_MISMATCH = ErrorDef(
        "LH-ING-017",
        "HL7 v2 file {file}: trailer count {reason} declares {expected} but {found} were "
        "found; the messages were landed or quarantined one by one, not as a batch.",
        422,
        EX_DATAERR,
        remedy="Ask the sender which messages it meant to send; the quarantined records of "
        "the same file show the ones that could not be landed.",
    )

    # --- synthetic hospital (LH-SYN) ---
    SYNTH_PARAMETER_INVALID = ErrorDef(
        "LH-SYN-001",
        "Synthetic hospital parameter {setting} is invalid: {reason}.",
        400,
        EX_USAGE,
        remedy="See `lakehouse synth --help` for the allowed ranges.",
    )
    SYNTH_OUTPUT_NOT_EMPTY = ErrorDef(
        "LH-SYN-002",
        "Output folder {path} is not empty and holds no synthetic hospital to replace.",
        409,
        EX_USAGE,
        remedy="Choose a new or empty folder; `--overwrite` replaces an earlier synthetic "
        "hospital (a folder with a manifest.json).",
    )

    # --- clinical NLP (LH-NLP) ---
    NLP_LANGUAGE_UNSUPPORTED = ErrorDef(
        "LH-NLP-001",
        "No NLP pipeline for language {name}; supported: {names}.",
        400,
        EX_USAGE,
    )
    NLP_RESOURCE_INVALID = ErrorDef(
        "LH-NLP-002",
        "NLP rule file {name} is unknown or invalid: {reason}.",
        500,
        EX_SOFTWARE,
        remedy="Every file in models/nlp/resources needs a string `version` field.",
    )
    NLP_NOTE_FAILED = ErrorDef(
        "LH-NLP-003",
        "Clinical NLP could not process {count} note(s) of {table}; they are marked failed "
        "in silver.note_deid (nlp_status) and have no entities or de-identified text.",
        500,
        EX_SOFTWARE,
        remedy="Find them with `SELECT ... FROM silver.note_deid WHERE nlp_status = 'failed'`, "
        "fix the pipeline and run `lakehouse nlp --full`.",
    )

    # --- clinical NLP training (LH-NLP-01x) ---
    NLP_TRAINING_SEED_HELD_OUT = ErrorDef(
        "LH-NLP-010",
        "Synthetic hospital seed {found} is held out for evaluation and never trained on; "
        "held out: {expected}.",
        400,
        EX_USAGE,
        remedy="Train on another seed (default 7001); models.nlp.train.HELD_OUT_SEEDS lists "
        "the seeds evaluation, tests and benchmarks use.",
    )
    NLP_TRAINING_DATA_INVALID = ErrorDef(
        "LH-NLP-011",
        "No usable {stage} notes for language {name}: {reason}.",
        400,
        EX_DATAERR,
        remedy="Generate a larger training hospital (--patients) or check its annotations.",
    )
    NLP_TRAINED_MODEL_INVALID = ErrorDef(
        "LH-NLP-012",
        "Trained NLP component {name} cannot be used: {reason}.",
        500,
        EX_CONFIG,
        remedy="Point nlp.trained_dir at a folder written by `python -m models.nlp.train --out` "
        "(one spaCy pipeline with a ner component per language) or unset it for rules only.",
    )

    # --- terminology (LH-VOC) ---
    VOCAB_FILE_INVALID = ErrorDef(
        "LH-VOC-001",
        "Vocabulary file {file} cannot be loaded: {reason}.",
        422,
        EX_DATAERR,
        remedy="Check the file is the format the loader names (header, delimiter) and not "
        "empty; nothing of it was loaded.",
    )
    VOCAB_FILE_HEADER = ErrorDef(
        "LH-VOC-002",
        "Vocabulary file {file} has the columns {found}; the loader needs {expected}.",
        422,
        EX_DATAERR,
        remedy="Export the file with the header the loader names (docs/terminology.md); "
        "nothing of it was loaded.",
    )
    VOCAB_FILE_ENCODING = ErrorDef(
        "LH-VOC-003",
        "Vocabulary file {file} is not {expected} text ({count} rows hold undecodable bytes).",
        422,
        EX_DATAERR,
        remedy="Pass the file's encoding (e.g. --encoding gb18030) or convert it to UTF-8; "
        "nothing of it was loaded.",
    )
    VOCAB_DUPLICATE_CODES = ErrorDef(
        "LH-VOC-004",
        "Vocabulary file {file} lists {count} codes more than once with different content.",
        422,
        EX_DATAERR,
        remedy="Keep one row per code (per source code and target for maps); nothing of "
        "the file was loaded.",
    )
    VOCAB_BAD_ROWS = ErrorDef(
        "LH-VOC-005",
        "Vocabulary file {file} has {count} invalid rows: {reason}.",
        422,
        EX_DATAERR,
        remedy="Fix or remove the rows named; nothing of the file was loaded.",
    )
    VOCAB_CONCEPT_ID_COLLISION = ErrorDef(
        "LH-VOC-006",
        "{count} derived local concept ids of {names} collide with other codes.",
        409,
        EX_DATAERR,
        remedy="Load the vocabulary from an Athena bundle (real concept ids) or report the "
        "collision: the derivation must change in a new ADR.",
    )
    VOCAB_EDITION_CONFLICT = ErrorDef(
        "LH-VOC-007",
        "Edition {version} of {name} is already loaded from a different file.",
        409,
        EX_DATAERR,
        remedy="Give the changed file a new edition name; a loaded edition never changes.",
    )
    VOCAB_EDITION_OUT_OF_ORDER = ErrorDef(
        "LH-VOC-008",
        "Edition {version} of {name} is valid from {found}, not after the newest loaded "
        "edition ({expected}).",
        409,
        EX_DATAERR,
        remedy="Editions load in order of their validity; pass a later --valid-from.",
    )
    VOCAB_UNKNOWN = ErrorDef(
        "LH-VOC-009",
        "Vocabulary {name} is not known: {reason}.",
        422,
        EX_DATAERR,
        remedy="Use one of ICD10, ICD10CM, ICD9CM3, LOINC, ATC, UCUM, GB2261 or "
        "LOCAL:<institution>:<LAB|DX|DRUG|PROC>.",
    )
    VOCAB_TARGET_MISSING = ErrorDef(
        "LH-VOC-010",
        "{count} rows of {file} map to codes that {names} does not hold.",
        422,
        EX_DATAERR,
        remedy="Load the target vocabulary first, or correct the target codes; nothing of "
        "the file was loaded.",
    )
    REVIEW_ITEM_NOT_FOUND = ErrorDef(
        "LH-VOC-011",
        "The review queue has no open item {key}.",
        404,
        EX_USAGE,
        remedy="`lakehouse vocab review` lists the open items and their keys.",
    )
    UNIT_CONVERSION_INVALID = ErrorDef(
        "LH-VOC-012",
        "Unit conversion table {file} is invalid: {reason}.",
        422,
        EX_DATAERR,
        remedy="One canonical UCUM unit per analyte, one row per analyte and source unit, "
        "a non-zero factor.",
    )
    CONCEPT_NOT_FOUND = ErrorDef(
        "LH-VOC-013",
        "Concept {key} is not in vocab.concept.",
        404,
        EX_USAGE,
        remedy="Accept a candidate listed by `lakehouse vocab review`, or load its vocabulary.",
    )

    # --- security and governance (LH-SEC) ---
    AUTH_FAILED = ErrorDef(
        "LH-SEC-001",
        "Authentication failed.",
        401,
        EX_NOPERM,
        remedy="Check the user name and password; repeated failures lock the account.",
    )
    ACCOUNT_LOCKED = ErrorDef(
        "LH-SEC-002",
        "The account is locked after {count} consecutive failed logins; retry after {detail}.",
        423,
        EX_NOPERM,
        remedy="Wait for the cooling-off period, or ask an administrator to unlock it.",
    )
    SECOND_FACTOR_REQUIRED = ErrorDef(
        "LH-SEC-003",
        "Role {role} requires a valid second factor (TOTP code).",
        401,
        EX_NOPERM,
        remedy="Give the current code of the authenticator app enrolled for the account.",
    )
    PASSWORD_POLICY = ErrorDef(
        "LH-SEC-004",
        "The password does not meet the policy: {reason}.",
        400,
        EX_USAGE,
    )
    SESSION_INVALID = ErrorDef(
        "LH-SEC-005",
        "The session token is not valid ({reason}).",
        401,
        EX_NOPERM,
        remedy="Log in again.",
    )
    ACCESS_DENIED = ErrorDef(
        "LH-SEC-006",
        "Role {role} may not {operation} {table}: {reason}.",
        403,
        EX_NOPERM,
        remedy="Ask for a grant, or use break-glass access with a stated reason in an "
        "emergency (audited and reviewed).",
    )
    SQL_NOT_READ_ONLY = ErrorDef(
        "LH-SEC-007",
        "Only a single read-only query is allowed; found {found}.",
        400,
        EX_USAGE,
    )
    SQL_UNPARSEABLE = ErrorDef(
        "LH-SEC-008",
        "The query could not be parsed as Spark SQL ({reason}).",
        400,
        EX_USAGE,
    )
    AUDIT_WRITE_FAILED = ErrorDef(
        "LH-SEC-009",
        "The audit event could not be recorded in {table} ({reason}); the operation was refused.",
        503,
        EX_UNAVAILABLE,
        retryable=True,
        remedy="Check the audit table's storage and the catalog (`lakehouse doctor`).",
    )
    AUDIT_CHAIN_BROKEN = ErrorDef(
        "LH-SEC-010",
        "The hash chain of {table} is broken at seq {seq}: {reason}.",
        500,
        EX_DATAERR,
        remedy="Treat as a security incident: preserve the storage, compare with backups "
        "and the head anchor, and report per the incident procedure.",
    )
    POLICY_INVALID = ErrorDef(
        "LH-SEC-011",
        "Policy file {path} is invalid: {reason}.",
        500,
        EX_CONFIG,
    )
    IDENTITY_TOKEN_INVALID = ErrorDef(
        "LH-SEC-012",
        "The identity provider's token was rejected ({reason}).",
        401,
        EX_NOPERM,
    )
    ACCOUNT_EXISTS = ErrorDef(
        "LH-SEC-013",
        "Account {name} already exists.",
        409,
        EX_USAGE,
    )

    # --- encryption at rest and in transit (LH-ENC) ---
    ENC_KEY_FILE = ErrorDef(
        "LH-ENC-001",
        "The key file {path} cannot be used: {reason}.",
        500,
        EX_CONFIG,
        remedy="Check security.encryption_key_file / security.tls_key_file: the file must "
        "exist, be readable by the lakehouse's user only (mode 0600) and hold the expected "
        "keys; a generated file is recreated only when it is absent.",
    )
    ENC_KMS_CLIENT_UNAVAILABLE = ErrorDef(
        "LH-ENC-002",
        "The Parquet key client {name} cannot be built: {reason}.",
        500,
        EX_CONFIG,
        remedy="Install a Java 17 JDK (javac) once, or set "
        "security.encryption_kms_client_class to the hospital KMS client's class.",
    )
    ENC_KEY_UNAVAILABLE = ErrorDef(
        "LH-ENC-003",
        "{table} has encrypted columns that this session cannot decrypt ({reason}).",
        403,
        EX_NOPERM,
        remedy="Read it from a session built with security.encryption_enabled and the "
        "master key file (or KMS) that encrypted it; analysts read the de-identified views.",
    )
    TLS_UNAVAILABLE = ErrorDef(
        "LH-ENC-004",
        "TLS certificate or key {path} cannot be used: {reason}.",
        500,
        EX_CONFIG,
        remedy="Set security.tls_cert_file and security.tls_key_file to the hospital's PEM "
        "files (both or neither), or unset both for a generated self-signed certificate.",
    )

    # --- de-identification (LH-DID) ---
    DEID_K_ANONYMITY_BELOW = ErrorDef(
        "LH-DID-001",
        "{count} de-identified view(s) below k={required} over their quasi-identifiers: {names}.",
        422,
        EX_DATAERR,
        remedy="See dq.k_anonymity for each view's k and the records in small classes; "
        "generalize further in the de-identification policy (wider age bands, shorter "
        "prefixes) or drop a quasi-identifier, then `lakehouse deid refresh` and check again.",
    )
    DEID_UNKNOWN_TABLE = ErrorDef(
        "LH-DID-002",
        "{name} is not a table of the de-identified layers ({names}).",
        400,
        EX_USAGE,
        remedy="Name a silver or gold table as <layer>.<table>, or its view as "
        "deid.<layer>_<table>.",
    )
    DEID_NOT_MATERIALIZABLE = ErrorDef(
        "LH-DID-003",
        "De-identified view of {table} cannot be materialized: {reason}.",
        409,
        EX_DATAERR,
        remedy="Materialization MERGEs on the source's keys, which must survive "
        "de-identification (kept or tokenized); run `lakehouse deid refresh` first.",
    )

    # --- silver (LH-SLV) ---
    # LH-SLV-001..019: HL7 v2 (LIS) and CDA R2 (EMR) (lakehouse/silver/hl7.py, cda.py)
    SILVER_HL7_NO_PATIENT_ID = ErrorDef(
        "LH-SLV-001",
        "HL7 v2 message {count} of {file} ({name}) has no patient identifier in PID-3 or "
        "PID-2: no silver rows were made of it.",
        422,
        EX_DATAERR,
        remedy="The sender must fill PID-3 (the MR identifier); the message stays in bronze.",
    )
    SILVER_HL7_OBX_NO_CODE = ErrorDef(
        "LH-SLV-002",
        "HL7 v2 message {count} of {file}: OBX {reason} has no observation identifier "
        "(OBX-3.1); that result was not made (the message's other rows were).",
        422,
        EX_DATAERR,
    )
    SILVER_HL7_BAD_TIME = ErrorDef(
        "LH-SLV-003",
        "HL7 v2 message {count} of {file}: {column} is not an HL7 date/time, so its versions "
        "cannot be ordered; no silver rows were made of it.",
        422,
        EX_DATAERR,
    )
    SILVER_HL7_NOT_MAPPED = ErrorDef(
        "LH-SLV-004",
        "HL7 v2 message {count} of {file} ({name}) has no PID segment: nothing in it maps to "
        "silver; counted and skipped (not an error for ACK, MFN or query messages).",
        422,
        EX_DATAERR,
    )
    SILVER_CDA_UNREADABLE = ErrorDef(
        "LH-SLV-010",
        "CDA record {count} of {file} could not be read in silver: {reason}.",
        422,
        EX_DATAERR,
    )
    SILVER_CDA_NOTHING_MAPPED = ErrorDef(
        "LH-SLV-011",
        "CDA record {count} of {file} (root element {name}) is not a ClinicalDocument and "
        "carries no coded entry silver maps; counted and skipped.",
        422,
        EX_DATAERR,
    )
    SILVER_CDA_ENTRY_SKIPPED = ErrorDef(
        "LH-SLV-012",
        "CDA record {count} of {file}: entry {name} was not mapped ({reason}).",
        422,
        EX_DATAERR,
    )
    # LH-SLV-040..059: the silver job (jobs/silver.py)
    SILVER_UNKNOWN_TABLE = ErrorDef(
        "LH-SLV-040",
        "The silver transform of {name} produced rows for {table}, which is not a silver "
        "table spec.",
        500,
        EX_SOFTWARE,
    )
    SILVER_UNKNOWN_BRONZE = ErrorDef(
        "LH-SLV-041",
        "Unknown bronze table {name}; silver reads: {names}.",
        400,
        EX_USAGE,
    )
    # LH-SLV-020..039: FHIR R4 and member CSV exports (lakehouse/silver/fhir.py, csv_member.py)
    SILVER_FHIR_NO_ID = ErrorDef(
        "LH-SLV-020",
        "FHIR {name} resource {count} of {file} has no id: it cannot be keyed in silver.",
        422,
        EX_DATAERR,
        remedy="The sending site must give every resource a logical id (FHIR R4 Resource.id).",
    )
    SILVER_FHIR_NO_PATIENT = ErrorDef(
        "LH-SLV-021",
        "FHIR {name} resource {count} of {file} names no patient: {reason}.",
        422,
        EX_DATAERR,
        remedy="subject must be a Patient reference (Patient/<id>, urn:uuid:<id> or "
        "Patient?identifier=<system>|<value>).",
    )
    SILVER_FHIR_MISSING_ELEMENT = ErrorDef(
        "LH-SLV-022",
        "FHIR {name} resource {count} of {file} lacks {column}, which its silver table needs.",
        422,
        EX_DATAERR,
    )
    SILVER_FHIR_NO_TEXT = ErrorDef(
        "LH-SLV-023",
        "FHIR DocumentReference {count} of {file} carries no text/plain attachment data; "
        "no silver.note row was made.",
        422,
        EX_DATAERR,
        remedy="Binary documents (PDF, images) belong in the document store; only inline "
        "text/plain content becomes a note.",
    )
    SILVER_FHIR_SHAPE = ErrorDef(
        "LH-SLV-024",
        "FHIR {name} resource {count} of {file} does not have the R4 shape silver reads.",
        422,
        EX_DATAERR,
    )
    SILVER_CSV_UNKNOWN_EXPORT = ErrorDef(
        "LH-SLV-030",
        "CSV row {count} of {file}: the file name matches no configured member export table.",
        422,
        EX_DATAERR,
        remedy="Add the file-name prefix to lakehouse/resources/silver_csv_exports.yaml.",
    )
    SILVER_CSV_MISSING_FIELD = ErrorDef(
        "LH-SLV-031",
        "CSV {name} row {count} of {file} has no {column}, which its silver table needs.",
        422,
        EX_DATAERR,
        remedy="A header the configuration does not know counts as missing: add it as a "
        "synonym in lakehouse/resources/silver_csv_exports.yaml.",
    )

    # --- master patient index (LH-EMP) ---
    EMPI_MODEL_INVALID = ErrorDef(
        "LH-EMP-001",
        "The record linkage model {path} cannot be used: {reason}.",
        500,
        EX_CONFIG,
        remedy="Point LAKEHOUSE_EMPI__MODEL_PATH at a model written by `lakehouse empi train` "
        "(or unset it to use the shipped one).",
    )
    EMPI_NO_INPUT = ErrorDef(
        "LH-EMP-002",
        "Table {table} does not exist: there is nothing to link yet.",
        404,
        EX_NOINPUT,
        remedy="Run the silver job first (`lakehouse silver run`).",
    )
    EMPI_REVIEW_UNKNOWN_PAIR = ErrorDef(
        "LH-EMP-003",
        "Review pair {key} is not in silver.person_review.",
        404,
        EX_DATAERR,
        remedy="`lakehouse empi review` lists the pending pairs and their ids.",
    )
    EMPI_REVIEW_BAD_DECISION = ErrorDef(
        "LH-EMP-004",
        "Review decision {found} is not one of {expected}.",
        422,
        EX_USAGE,
    )
    EMPI_TRAINING_FAILED = ErrorDef(
        "LH-EMP-005",
        "Training the record linkage model failed ({reason}); the model in use is unchanged.",
        500,
        EX_SOFTWARE,
        remedy="Training needs enough records with overlapping identifiers; check the count "
        "of silver.patient rows and the training backend.",
    )
    EMPI_CLUSTERS_NOT_CONVERGED = ErrorDef(
        "LH-EMP-006",
        "Person clustering did not converge in {count} iterations; nothing was written.",
        500,
        EX_SOFTWARE,
        remedy="Lower the match threshold's reach (a chain of links this long is suspect) "
        "or raise the iteration limit in lakehouse/empi/clusters.py.",
    )

    # --- ML features and MEDS export (LH-FEA) ---
    FEATURES_NO_INPUT = ErrorDef(
        "LH-FEA-001",
        "Table {table} does not exist: there is nothing to build features from.",
        404,
        EX_NOINPUT,
        remedy="Build the OMOP gold tables first (`lakehouse gold`), or the features "
        "before exporting them (`lakehouse features build`).",
    )
    FEATURES_VERSION_UNKNOWN = ErrorDef(
        "LH-FEA-002",
        "Table {table} has no Delta version {version}.",
        404,
        EX_DATAERR,
        remedy="`DESCRIBE HISTORY <table>` lists its versions; features.builds maps feature "
        "versions to the gold versions they were built from.",
    )
    FEATURES_EXPORT_TARGET = ErrorDef(
        "LH-FEA-003",
        "MEDS export folder {path} cannot be used: {reason}.",
        409,
        EX_IOERR,
        remedy="Give an empty or new folder, or pass --overwrite to replace a previous export.",
    )

    # --- model training and batch scoring (LH-MDL) ---
    MODEL_TRAINING_TOO_LARGE = ErrorDef(
        "LH-MDL-001",
        "The training cohort of {table} has {count} rows, more than the driver-side bound "
        "{expected} (models.max_training_rows).",
        413,
        EX_DATAERR,
        remedy="Raise LAKEHOUSE_MODELS__MAX_TRAINING_ROWS if the driver has the memory "
        "(about 330 bytes a row), or train on fewer index dates; see docs/models.md.",
    )
    MODEL_TRAINING_DATA_INVALID = ErrorDef(
        "LH-MDL-002",
        "The {stage} split of {table} cannot train or evaluate a model: {reason}.",
        422,
        EX_DATAERR,
        remedy="Build the features on more persons (each split needs positive and negative "
        "labels), or check the label rule in models.label_source_prefixes.",
    )
    MODEL_NO_CHAMPION = ErrorDef(
        "LH-MDL-003",
        "Model {name} has no version with the alias champion to score with.",
        404,
        EX_NOINPUT,
        remedy="Train one first: `lakehouse train`.",
    )
    MODEL_RUN_NOT_REPRODUCIBLE = ErrorDef(
        "LH-MDL-004",
        "MLflow run {name} cannot be reproduced: {reason}.",
        422,
        EX_DATAERR,
        remedy="Reproduce runs logged by `lakehouse train` (they carry the data versions and "
        "the training parameters); the tables must still hold those Delta versions.",
    )

    # --- multimodal data: image pixels and the multimodal cohort (LH-MMD) ---
    IMAGE_FILE_UNREADABLE = ErrorDef(
        "LH-MMD-001",
        "The landed DICOM file of an imaging study cannot be read: {reason}.",
        422,
        EX_DATAERR,
        remedy="The study is in features.image_pixels_quarantine; restore the landed file "
        "(its bytes must match bronze's SHA-256) and run `lakehouse features` again.",
    )
    IMAGE_PIXELS_UNDECODABLE = ErrorDef(
        "LH-MMD-002",
        "The pixel data of an imaging study cannot be decoded: {reason}.",
        422,
        EX_DATAERR,
        remedy="The study is in features.image_pixels_quarantine; a truncated or compressed "
        "file needs a complete uncompressed copy from the PACS (re-send it).",
    )
    MULTIMODAL_IMAGE_INVALID = ErrorDef(
        "LH-MMD-003",
        "An image of the cohort of {table} has {count} bytes, not {expected} (64x64 float32).",
        422,
        EX_DATAERR,
        remedy="Rebuild features.image_pixels with this version of the code "
        "(`lakehouse features`); see docs/models.md.",
    )

    # --- data quality (LH-DQC) ---
    DQ_RULE_INVALID = ErrorDef(
        "LH-DQC-001",
        "Data-quality rule {name} in {file} is invalid: {reason}.",
        422,
        EX_DATAERR,
        remedy="Fix the rule in its YAML file (docs/quality.md lists the fields and check "
        "types); rule ids must be unique across the files loaded.",
    )
    DQ_THRESHOLDS_INVALID = ErrorDef(
        "LH-DQC-002",
        "The DQD threshold files in {path} cannot be used: {reason}.",
        500,
        EX_CONFIG,
        remedy="Point LAKEHOUSE_QUALITY__DQD_THRESHOLDS_DIR at a folder holding the "
        "DataQualityDashboard CSVs (OMOP_CDMv5.4_Field_Level.csv, _Table_Level.csv, "
        "_Concept_Level.csv), or unset it to derive the structural checks from the CDM spec.",
    )
    DQ_CHECKS_FAILED = ErrorDef(
        "LH-DQC-003",
        "{count} data-quality rule(s) failed at severity {required} or above: {names}.",
        422,
        EX_DATAERR,
        remedy="See dq.results for the figures and dq.failures for the keys of failing rows "
        "(`lakehouse dq run` prints a summary).",
    )

    # --- serving (LH-SRV) ---
    SRV_REQUEST_INVALID = ErrorDef(
        "LH-SRV-001",
        "The request is not valid: {reason}.",
        422,
        EX_USAGE,
        remedy="Send the fields docs/assistant.md lists for the endpoint (JSON body).",
    )
    SRV_CITATION_INVALID = ErrorDef(
        "LH-SRV-002",
        "The citation is not valid: {reason}.",
        400,
        EX_USAGE,
        remedy="Citations have the form table@version:key as the assistant returned them "
        "(URL-encoded in the path).",
    )
    SRV_CITATION_NOT_FOUND = ErrorDef(
        "LH-SRV-003",
        "No row of {table} at version {version} with the cited key is visible to you.",
        404,
        EX_NOINPUT,
        remedy="The row may be outside your department or site, or the version may have "
        "been vacuumed (see the table's history).",
    )
    SRV_INTERNAL = ErrorDef(
        "LH-SRV-004",
        "The service failed ({reason}); the details are in the service log.",
        500,
        EX_SOFTWARE,
        retryable=True,
        remedy="Retry; if it persists, see the service log (it carries no patient data).",
    )
    SRV_EVAL_NO_TRUTH = ErrorDef(
        "LH-SRV-005",
        "No synthetic hospital truth at {path}: the assistant evaluation needs its questions.",
        404,
        EX_NOINPUT,
        remedy="Run `make demo` (or `lakehouse synth` and the pipeline) first, or pass --truth "
        "with the truth folder of the synthetic hospital the lakehouse was built from.",
    )

    # --- assistant language model (LH-LLM) ---
    LLM_UNREACHABLE = ErrorDef(
        "LH-LLM-001",
        "The language model at {url} did not answer ({reason}) after {attempts} attempt(s); "
        "the grounded planner answered instead.",
        503,
        EX_UNAVAILABLE,
        retryable=True,
        remedy="Check that the model server (infra/vllm) runs and listens at llm.endpoint; "
        "raise llm.timeout_s if it is only slow.",
    )
    LLM_BAD_RESPONSE = ErrorDef(
        "LH-LLM-002",
        "The language model's response is not usable ({reason}); the grounded planner "
        "answered instead.",
        502,
        EX_UNAVAILABLE,
        remedy="Check llm.model names a model the server serves, and that the server was "
        "started with tool calling enabled (--enable-auto-tool-choice).",
    )
    LLM_ENDPOINT_NOT_ALLOWED = ErrorDef(
        "LH-LLM-003",
        "The language model endpoint {url} is not allowed: {reason}.",
        500,
        EX_CONFIG,
        remedy="Patient data is sent to the model: serve it on a loopback or private-network "
        "address, or set llm.allow_remote=true if a remote endpoint is approved.",
    )
    LLM_ANSWER_UNCITED = ErrorDef(
        "LH-LLM-004",
        "The language model's answer failed the citation check ({reason}); the grounded "
        "planner answered instead.",
        422,
        EX_DATAERR,
        remedy="Nothing to fix per question; a model that fails often needs a better prompt "
        "or model (see docs/assistant.md, LLM mode).",
    )
    LLM_STEPS_EXHAUSTED = ErrorDef(
        "LH-LLM-005",
        "The language model used its {count} tool calls without answering; the grounded "
        "planner answered instead.",
        422,
        EX_DATAERR,
        remedy="Raise llm.max_steps if questions legitimately need more tool calls.",
    )

    # --- FHIR API (LH-FHR) ---
    FHIR_TYPE_UNSUPPORTED = ErrorDef(
        "LH-FHR-001",
        "Resource type or operation {name} is not served by this FHIR endpoint.",
        404,
        EX_USAGE,
        remedy="GET /fhir/r4/metadata lists the resource types, interactions and search "
        "parameters served (docs/fhir.md).",
    )
    FHIR_SEARCH_INVALID = ErrorDef(
        "LH-FHR-002",
        "Search parameter {name} is not valid: {reason}.",
        400,
        EX_USAGE,
        remedy="Use the search parameters of the CapabilityStatement (GET /fhir/r4/metadata) "
        "with the documented value formats (docs/fhir.md).",
    )
    FHIR_NOT_FOUND = ErrorDef(
        "LH-FHR-003",
        "No {name} with this id is visible to you.",
        404,
        EX_NOINPUT,
        remedy="The resource may not exist, or it may be outside your department or site.",
    )
    FHIR_EXPORT_ASYNC_REQUIRED = ErrorDef(
        "LH-FHR-004",
        "A bulk $export runs asynchronously only: send the header Prefer: respond-async.",
        400,
        EX_USAGE,
        remedy="Kick off with Prefer: respond-async, then poll the Content-Location URL "
        "(FHIR Bulk Data Access IG; docs/fhir.md).",
    )
    FHIR_EXPORT_INVALID = ErrorDef(
        "LH-FHR-005",
        "Export parameter {name} is not valid: {reason}.",
        400,
        EX_USAGE,
        remedy="_type takes the resource types of the CapabilityStatement, _since a FHIR "
        "instant, _outputFormat application/fhir+ndjson (docs/fhir.md).",
    )
    FHIR_EXPORT_NOT_FOUND = ErrorDef(
        "LH-FHR-006",
        "No export job or file {name} of yours exists.",
        404,
        EX_NOINPUT,
        remedy="Export jobs and files are visible to the user who started them only; "
        "a cancelled or removed job is gone.",
    )
    FHIR_EXPORT_FAILED = ErrorDef(
        "LH-FHR-007",
        "Bulk export job failed while writing {name} ({reason}).",
        500,
        EX_SOFTWARE,
        remedy="The service log names the failure; start a new export (its audit event "
        "records the failure).",
    )
    FHIR_EXPORT_BUSY = ErrorDef(
        "LH-FHR-008",
        "You have {count} bulk exports running already.",
        429,
        EX_TEMPFAIL,
        retryable=True,
        remedy="Wait for a running export to finish (or DELETE it), then start another.",
    )

    # --- 4A query services (LH-IOP) ---
    IOP_INSTITUTION_DENIED = ErrorDef(
        "LH-IOP-001",
        "You may not query the records of institution {name}.",
        403,
        EX_NOPERM,
        remedy="Ask for one of your institutions (GET /api/me lists them); the refusal is audited.",
    )
    IOP_REQUEST_INVALID = ErrorDef(
        "LH-IOP-002",
        "Query parameter {name} is not valid for this service: {reason}.",
        400,
        EX_USAGE,
        remedy="Each service's parameters are in docs/interop-4a.md and "
        "docs/openapi/interop-4a.json.",
    )
    IOP_DOCUMENT_NOT_FOUND = ErrorDef(
        "LH-IOP-003",
        "No shared document {name} of this encounter is visible to you.",
        404,
        EX_NOINPUT,
        remedy="GET /interop/4a/documents lists an encounter's documents; the encounter may "
        "not exist, or be outside your department or site.",
    )
    IOP_DOCUMENT_INVALID = ErrorDef(
        "LH-IOP-004",
        "The shared document {name} did not parse as well-formed CDA ({reason}); it was not "
        "served.",
        500,
        EX_SOFTWARE,
        remedy="A defect of the document writer: the service log names the document type.",
    )

    # --- MLflow tracking server and model registry (LH-MLF) ---
    MLFLOW_START_FAILED = ErrorDef(
        "LH-MLF-001",
        "The MLflow tracking server did not start on {url}: {reason}.",
        500,
        EX_UNAVAILABLE,
        remedy="See <data_dir>/mlflow/server.log; check that the port is free and the "
        "artifacts destination writable, or raise mlflow.start_timeout_s on a slow machine.",
    )
    MLFLOW_ALREADY_RUNNING = ErrorDef(
        "LH-MLF-002",
        "A tracking server already answers on {url}.",
        409,
        EX_TEMPFAIL,
        remedy="Use that server (`lakehouse mlflow status`), stop it, or set "
        "LAKEHOUSE_MLFLOW__PORT to another port.",
    )
    MLFLOW_BACKEND_UNREACHABLE = ErrorDef(
        "LH-MLF-003",
        "The MLflow backend store {url} cannot be reached: {reason}.",
        503,
        EX_UNAVAILABLE,
        retryable=True,
        remedy="Check that the database server runs, the database exists and the user may "
        "connect (LAKEHOUSE_MLFLOW__BACKEND_STORE_URI).",
    )
    MLFLOW_UNREACHABLE = ErrorDef(
        "LH-MLF-004",
        "The MLflow tracking server at {url} does not answer: {reason}.",
        503,
        EX_UNAVAILABLE,
        retryable=True,
        remedy="Start it with `lakehouse mlflow serve`, or point LAKEHOUSE_MLFLOW__TRACKING_URI "
        "at the hospital's server.",
    )
    MLFLOW_REGISTRY_FAILED = ErrorDef(
        "LH-MLF-005",
        "The model registry refused {operation} of model {name}: {reason}.",
        502,
        EX_SOFTWARE,
        remedy="Check that the run logged a model under that name (the run's artifacts in "
        "the MLflow UI) and that the registry is reachable.",
    )
    MLFLOW_SETTINGS_INVALID = ErrorDef(
        "LH-MLF-006",
        "MLflow setting {setting} is invalid: {reason}.",
        500,
        EX_CONFIG,
        remedy="The backend store is sqlite:///<absolute path> or "
        "postgresql+psycopg://user:password@host:port/database; see docs/mlflow.md.",
    )

    # --- backup and restore (LH-BAK) ---
    BACKUP_NOT_FOUND = ErrorDef(
        "LH-BAK-001",
        "No complete backup {name} in {path}.",
        404,
        EX_NOINPUT,
        remedy="`lakehouse backup list` shows the backups; check backup.destination.",
    )
    BACKUP_CORRUPT = ErrorDef(
        "LH-BAK-002",
        "Backup {name} is damaged: file {file} {reason}.",
        422,
        EX_DATAERR,
        remedy="Nothing was overwritten. Restore another backup (--backup ID), or repair the "
        "backup folder from its off-site copy.",
    )
    BACKUP_LOG_UNREADABLE = ErrorDef(
        "LH-BAK-003",
        "The Delta log of table {table} cannot rebuild version {version}: {reason}.",
        500,
        EX_DATAERR,
        remedy="Check the table's _delta_log folder; a table with data files outside its "
        "folder (a shallow clone) is backed up by a deep copy first.",
    )
    BACKUP_RETENTION_TOO_SHORT = ErrorDef(
        "LH-BAK-004",
        "Table {table} keeps removed files for {found}, not longer than the backup "
        "interval {expected}.",
        409,
        EX_CONFIG,
        remedy="Raise the table's delta.deletedFileRetentionDuration above "
        "backup.interval_hours, back up more often, or set backup.retention_check=warn.",
    )
    BACKUP_VERIFY_FAILED = ErrorDef(
        "LH-BAK-005",
        "Restored table {table} does not match the backup: {reason} (expected {expected}, "
        "found {found}).",
        500,
        EX_DATAERR,
        remedy="Re-run the restore (it is idempotent); if it fails again, restore an older "
        "backup and report the backup as damaged.",
    )
    BACKUP_UNSUPPORTED = ErrorDef(
        "LH-BAK-006",
        "{name} cannot be backed up or restored here: {reason}.",
        501,
        EX_UNAVAILABLE,
        remedy="See docs/operations.md for what a backup holds and what the DBA or the "
        "storage team backs up.",
    )
    BACKUP_NO_PARENT = ErrorDef(
        "LH-BAK-007",
        "An incremental backup needs a complete backup in {path} to build on.",
        409,
        EX_USAGE,
        remedy="Take a full backup first: `lakehouse backup`.",
    )
    BACKUP_STATE_FAILED = ErrorDef(
        "LH-BAK-008",
        "Local state {name} could not be copied: {reason}.",
        500,
        EX_IOERR,
        remedy="Check the path exists and is readable (and, for pg_dump, that the database "
        "answers); nothing of a failed backup is listed.",
    )

    # --- standby (LH-STB) ---
    STANDBY_TARGET_INVALID = ErrorDef(
        "LH-STB-001",
        "The standby location {path} cannot be used: {reason}.",
        500,
        EX_CONFIG,
        remedy="Point standby.target at a local or mounted folder outside the warehouse "
        "(another disk or host in production); see docs/operations.md.",
    )
    STANDBY_FILE_MISSING = ErrorDef(
        "LH-STB-002",
        "Version {version} of table {table} is not shipped: its file {file} is missing or "
        "damaged ({reason}).",
        503,
        EX_TEMPFAIL,
        retryable=True,
        remedy="The shipper retries every cycle and never exposes the version without its "
        "files. If it persists, the file was vacuumed or lost on the primary: keep "
        "delta.deletedFileRetentionDuration far above the standby lag, and re-seed the table.",
    )
    STANDBY_COMMIT_UNREADABLE = ErrorDef(
        "LH-STB-003",
        "Commit {version} of table {table} on the primary cannot be read: {reason}.",
        503,
        EX_TEMPFAIL,
        retryable=True,
        remedy="A commit still being written (non-atomic storage) is retried every cycle; "
        "a damaged commit file on the primary needs the table's owner.",
    )
    STANDBY_LOG_GAP = ErrorDef(
        "LH-STB-004",
        "The primary log of table {table} has no commit {version} but later ones: the "
        "standby fell behind the primary's log retention.",
        409,
        EX_DATAERR,
        remedy="Move the standby copy of the table aside and restart the shipper: it "
        "re-seeds the table from the primary's newest checkpoint.",
    )
    STANDBY_LOCKED = ErrorDef(
        "LH-STB-005",
        "Another standby shipper holds {path}.",
        409,
        EX_TEMPFAIL,
        retryable=True,
        remedy="Run one shipper per standby location; stop the other one first.",
    )
    STANDBY_PROMOTED = ErrorDef(
        "LH-STB-006",
        "The standby at {path} was promoted at {found}; nothing is shipped to it again.",
        409,
        EX_USAGE,
        remedy="It is the primary now. To protect it, point standby.target of the new "
        "primary at a fresh, empty location.",
    )
    STANDBY_INCOMPLETE = ErrorDef(
        "LH-STB-007",
        "Standby table {table} is not complete at version {version}: {reason}.",
        500,
        EX_DATAERR,
        remedy="Nothing was registered. Check the standby storage; restore the table from "
        "its latest backup (`lakehouse restore --table`) if files were lost.",
    )
    STANDBY_NAME_TAKEN = ErrorDef(
        "LH-STB-008",
        "Table {table} already exists in the standby catalog at another location {path}.",
        409,
        EX_USAGE,
        remedy="Drop that catalog entry on the standby site (it is not the shipped table) "
        "and run `lakehouse failover` again.",
    )
    STANDBY_STILL_SHIPPING = ErrorDef(
        "LH-STB-009",
        "The standby shipper did not stop within {found} seconds ({path} is still held).",
        409,
        EX_TEMPFAIL,
        retryable=True,
        remedy="Stop the `lakehouse standby` process (SIGTERM) and run the failover again.",
    )
    PG_REPLICATION_UNREACHABLE = ErrorDef(
        "LH-STB-010",
        "The PostgreSQL server {name} did not answer the replication status query ({reason}).",
        503,
        EX_UNAVAILABLE,
        retryable=True,
        remedy="Check that the server runs and that the role may read pg_stat_replication "
        "(a superuser or a member of pg_monitor); docs/operations.md, PostgreSQL streaming "
        "replication.",
    )

    # --- LoRA fine-tuning (LH-LRA) ---
    LORA_BASE_MODEL_MISSING = ErrorDef(
        "LH-LRA-001",
        "Base model directory {path} does not exist or holds no config.json.",
        400,
        EX_NOINPUT,
        remedy="Pass --base-model a local Hugging Face model directory (config.json, weights, "
        "tokenizer); no model hub is reached.",
    )
    LORA_NOT_CAUSAL_LM = ErrorDef(
        "LH-LRA-002",
        "Base model {path} cannot be tuned as a causal language model: {reason}.",
        422,
        EX_DATAERR,
        remedy="Use a decoder-only model directory (Llama, Qwen2, Mistral...) with its tokenizer "
        "and a chat template.",
    )
    LORA_DATA_MISSING = ErrorDef(
        "LH-LRA-003",
        "Instruction data {path} does not exist.",
        400,
        EX_NOINPUT,
        remedy="Write it with `lakehouse lora-data`, or pass --data a JSONL file or folder.",
    )
    LORA_NO_EXAMPLES = ErrorDef(
        "LH-LRA-004",
        "Instruction data {path} has no usable example ({count} lines rejected, most: {reason}).",
        422,
        EX_DATAERR,
        remedy="Check the rejected-line counts in the report; each line must be a JSON object "
        "with messages ending in an assistant reply.",
    )
    LORA_BAD_LINE = ErrorDef(
        "LH-LRA-005",
        "A line of {file} is not an instruction example: {reason}.",
        422,
        EX_DATAERR,
        remedy="Such lines are skipped and counted; fix or regenerate the data file.",
    )
    LORA_DEVICE_UNAVAILABLE = ErrorDef(
        "LH-LRA-006",
        "Device {name} is not available for training: {reason}.",
        503,
        EX_UNAVAILABLE,
        remedy="Use --device auto (cuda when present, else cpu), or run on the GPU server.",
    )
    LORA_SOURCE_MISSING = ErrorDef(
        "LH-LRA-007",
        "Source {table} of the instruction data does not exist.",
        404,
        EX_NOINPUT,
        remedy="Run `lakehouse deid refresh` (the de-identified views) after silver and the "
        "NLP job.",
    )
    # --- knowledge base (LH-KNB) ---
    KB_PATH_INVALID = ErrorDef(
        "LH-KNB-001",
        "The knowledge-base path is not valid: {reason}.",
        400,
        EX_USAGE,
        remedy="Use a relative folder path of plain names (no '..', no leading '/', no "
        "hidden or '_' names) outside the read-only 'project' section.",
    )
    KB_NOT_FOUND = ErrorDef(
        "LH-KNB-002",
        "No knowledge-base {name} at this path is visible to you.",
        404,
        EX_NOINPUT,
        remedy="GET /api/kb/tree lists the folders and documents you may read.",
    )
    KB_FILE_TOO_LARGE = ErrorDef(
        "LH-KNB-003",
        "File {file} is {found} bytes, over the limit of {expected} bytes.",
        413,
        EX_DATAERR,
        remedy="Split the document, or raise knowledge.max_file_mb.",
    )
    KB_TEXT_ENCODING = ErrorDef(
        "LH-KNB-004",
        "File {file} is neither UTF-8 nor GB18030 (GBK) text.",
        422,
        EX_DATAERR,
        remedy="Save the document as UTF-8 (or GB18030/GBK for Chinese) and add it again.",
    )
    KB_PDF_ENCRYPTED = ErrorDef(
        "LH-KNB-005",
        "PDF {file} is encrypted with a password.",
        422,
        EX_DATAERR,
        remedy="Add an unencrypted copy of the PDF.",
    )
    KB_PDF_UNREADABLE = ErrorDef(
        "LH-KNB-006",
        "PDF {file} cannot be read: {reason}.",
        422,
        EX_DATAERR,
        remedy="Check the file opens in a PDF viewer; a scanned PDF needs OCR (a text layer) "
        "first.",
    )
    KB_UNSUPPORTED = ErrorDef(
        "LH-KNB-007",
        "File {file} is of an unsupported type ({found}); expected {expected}.",
        415,
        EX_DATAERR,
        remedy="Add Markdown (.md), plain text (.txt) or PDF (.pdf) documents.",
    )
    KB_ACCESS_FILE_INVALID = ErrorDef(
        "LH-KNB-008",
        "Access file {file} is not valid ({reason}); its folder is closed to everyone "
        "until it is fixed.",
        500,
        EX_CONFIG,
        remedy="Fix the folder's _access.yaml: `roles:` and/or `departments:` lists "
        "(docs/knowledge-base.md).",
    )
    KB_QUERY_INVALID = ErrorDef(
        "LH-KNB-009",
        "The search query is not valid: {reason}.",
        422,
        EX_USAGE,
        remedy="Send q with 1 to 500 characters holding at least one word.",
    )
    # --- assistant knowledge retrieval (LH-AKB) ---
    AKB_CITATION_NOT_FOUND = ErrorDef(
        "LH-AKB-001",
        "No knowledge-base document you may read holds the cited span ({reason}).",
        404,
        EX_NOINPUT,
        remedy="The document may be in a folder you may not read, removed, or edited since "
        "it was cited (the span is checked against its current text); ask again.",
    )
    # --- notebooks (LH-NBK) ---
    NOTEBOOKS_MISSING = ErrorDef(
        "LH-NBK-001",
        "No notebooks to run: {reason} ({path}).",
        404,
        EX_NOINPUT,
        remedy="Run the notebooks stage from a source checkout (the notebooks/ folder beside "
        "the packages), or skip it: `lakehouse demo --stage ...` without notebooks.",
    )
    NOTEBOOK_FAILED = ErrorDef(
        "LH-NBK-002",
        "Notebook {name} stopped at {detail}; the executed copy with the error is {path}.",
        500,
        EX_SOFTWARE,
        remedy="Open the executed copy: the failing cell carries the traceback. A notebook "
        "reads the tables the demo builds (its cell tagged parameters names them).",
    )
    # --- reverse proxy (LH-PRX) ---
    PROXY_TEMPLATE_INCOMPLETE = ErrorDef(
        "LH-PRX-001",
        "nginx template {file} has placeholders with no value: {names}.",
        500,
        EX_CONFIG,
        remedy="Give a value for every upper-case placeholder the template names "
        "(docs/operations.md, Running two assistant replicas behind nginx).",
    )
    PROXY_NGINX_MISSING = ErrorDef(
        "LH-PRX-002",
        "{name} is not installed on this host: `make nginx` (as root) or "
        "`apt-get install nginx` installs it.",
        503,
        EX_UNAVAILABLE,
        remedy="Install Debian's package: `make nginx` (as root) or `apt-get install nginx`.",
    )
    # --- SQL endpoint (LH-SQL) ---
    SQL_AUTH_HANDSHAKE = ErrorDef(
        "LH-SQL-001",
        "The SQL endpoint refused the connection's sign-in handshake: {reason}.",
        401,
        EX_NOPERM,
        remedy="Connect with user name and password (SASL PLAIN: the Hive JDBC driver's "
        "default, beeline -n USER -p PASSWORD), or a session or single sign-on token as the "
        "password; no Kerberos, no noSasl (docs/operations.md, SQL endpoint).",
    )
    SQL_HANDLE_UNKNOWN = ErrorDef(
        "LH-SQL-002",
        "No open {name} with that handle on this connection ({reason}).",
        404,
        EX_USAGE,
        remedy="Open a session (reconnect) and run the statement again: sessions end with "
        "their connection, on CloseSession and after sql_endpoint.idle_timeout_s idle.",
    )
    SQL_UNSUPPORTED = ErrorDef(
        "LH-SQL-003",
        "The SQL endpoint does not support {operation}: {reason}.",
        501,
        EX_USAGE,
        remedy="The endpoint answers read-only queries (SELECT) and the catalog calls "
        "(schemas, tables, columns, types); see docs/operations.md, SQL endpoint.",
    )
    SQL_ROWS_CAPPED = ErrorDef(
        "LH-SQL-004",
        "The result stops at sql_endpoint.max_rows ({count} rows): more rows may match.",
        413,
        EX_DATAERR,
        remedy="Aggregate in the query, add a WHERE clause or a LIMIT, or ask the operators "
        "to raise sql_endpoint.max_rows.",
    )
    SQL_QUERY_FAILED = ErrorDef(
        "LH-SQL-005",
        "Spark could not run the statement ({reason}).",
        400,
        EX_DATAERR,
        remedy="Check the statement against the columns the catalog calls list for your role; "
        "the reason is Spark's error class (its full text stays in no log: it may quote data).",
    )
    SQL_LISTEN_FAILED = ErrorDef(
        "LH-SQL-006",
        "The SQL endpoint cannot listen on {url}: {reason}.",
        503,
        EX_UNAVAILABLE,
        remedy="Choose a free port (sql_endpoint.port or --port) or stop what holds it.",
    )
    # --- Spark Connect gateway (LH-SCN) ---
    CONNECT_AUTH = ErrorDef(
        "LH-SCN-001",
        "The Spark Connect gateway refused the request's sign-in: {reason}.",
        401,
        EX_NOPERM,
        remedy="Connect with a session token of lakehouse serve (or a hospital single "
        "sign-on token) as the bearer token: sc://HOST:PORT/;use_ssl=true;token=TOKEN; sign "
        "in again when the session has expired (docs/operations.md, Spark Connect).",
    )
    CONNECT_REFUSED = ErrorDef(
        "LH-SCN-002",
        "The Spark Connect gateway does not run {operation}: {reason}.",
        403,
        EX_NOPERM,
        remedy="Read tables by name (spark.table('deid.x'), spark.sql('SELECT ...')) and "
        "transform them with built-in functions; no UDFs, file reads, writes or temporary "
        "views through the gateway (docs/adr/0033).",
    )
    CONNECT_FAILED = ErrorDef(
        "LH-SCN-003",
        "Spark could not run the plan ({reason}).",
        400,
        EX_DATAERR,
        remedy="The reason is Spark's error class; its full text is not passed on (it may "
        "quote data). Check column names and types against spark.table(...).schema.",
    )
    CONNECT_LISTEN_FAILED = ErrorDef(
        "LH-SCN-004",
        "The Spark Connect gateway cannot listen on {url}: {reason}.",
        503,
        EX_UNAVAILABLE,
        remedy="Choose a free port (spark_connect.port or --port) or stop what holds it.",
    )
    # --- operations console and metrics (LH-CON) ---
    CONSOLE_SOURCE_FAILED = ErrorDef(
        "LH-CON-001",
        "The console could not read {name}: {reason}.",
        503,
        EX_UNAVAILABLE,
        retryable=True,
        remedy="The panel shows the code and the rest of the console still works; check the "
        "source it names (the table exists, the backup folder is readable, the MLflow server "
        "answers) and reload after console.cache_ttl_s.",
    )
    CONSOLE_METRICS_UNAUTHORIZED = ErrorDef(
        "LH-CON-002",
        "The /metrics request is not authorized: {reason}.",
        401,
        EX_NOPERM,
        remedy="Send `Authorization: Bearer <token>` with the token of "
        "console.metrics_token_file (Prometheus: bearer_token_file), or a signed-in admin "
        "or auditor session.",
    )

    @property
    def id(self) -> str:
        return self.value.id

    @property
    def http_status(self) -> int:
        return self.value.http_status

    @property
    def exit_status(self) -> int:
        return self.value.exit_status

    @property
    def retryable(self) -> bool:
        return self.value.retryable

    def params(self) -> list[str]:
        """Names of the parameters the message template uses."""
        return [f for _, f, _, _ in string.Formatter().parse(self.value.template) if f]


class LakehouseError(Exception):
    """Raised when the lakehouse refuses or fails an operation; carries a catalogued code."""

    def __init__(self, code: ErrorCode, **params: Any) -> None:
        unsafe = set(params) - SAFE_PARAMS
        if unsafe:
            raise TypeError(f"error parameters not in SAFE_PARAMS: {sorted(unsafe)}")
        self.code = code
        self.params = params
        super().__init__(f"[{code.id}] {self.render()}")

    def render(self) -> str:
        """The message, with parameters the caller did not give shown as ``?``."""
        values = {name: self.params.get(name, "?") for name in self.code.params()}
        return self.code.value.template.format(**values)

    @property
    def retryable(self) -> bool:
        return self.code.retryable

    def to_dict(self) -> dict[str, Any]:
        """The ``{"error": {code, message, param}}`` body services answer with."""
        return {
            "error": {
                "code": self.code.id,
                "name": self.code.name,
                "message": self.render(),
                "param": {k: str(v) for k, v in self.params.items()},
            }
        }


class SetupError(LakehouseError):
    """Raised when the machine lacks something the lakehouse needs (Java, jars, storage)."""


class ConfigurationError(LakehouseError):
    """Raised when settings are missing or inconsistent."""


class TableError(LakehouseError):
    """Raised when a table spec, a table's stored schema or a write's input is wrong."""


class WriteConflictError(TableError):
    """Raised when a Delta commit lost a race to a concurrent writer; retryable."""


class JobError(LakehouseError):
    """Raised when a job or a demo stage fails or is asked for by a wrong name."""


class IngestError(LakehouseError):
    """Raised when ingestion is asked for an unknown source or cannot read its landing folder."""


class NlpError(LakehouseError):
    """Raised when an NLP pipeline is asked for an unsupported language or a bad rule file."""


class TerminologyError(LakehouseError):
    """Raised when a vocabulary file, an edition, a unit table or a review decision is wrong."""


class SecurityError(LakehouseError):
    """Raised when authentication, authorization, the SQL guard or the audit log refuses."""


_CLASS_BY_AREA: dict[str, type[LakehouseError]] = {
    "CFG": ConfigurationError,
    "ENV": SetupError,
    "TBL": TableError,
    "JOB": JobError,
    "ING": IngestError,
    "JDB": IngestError,
    "SEC": SecurityError,
    "NLP": NlpError,
    "VOC": TerminologyError,
}


def error(code: ErrorCode, **params: Any) -> LakehouseError:
    """Build the exception of the right class for ``code`` (by its area)."""
    if code is ErrorCode.WRITE_CONFLICT:
        return WriteConflictError(code, **params)
    area = code.id.split("-")[1]
    return _CLASS_BY_AREA.get(area, LakehouseError)(code, **params)


def render_catalog() -> str:
    """The catalog as Markdown, as committed in ``docs/error-codes.md``."""
    lines = [
        "# Error codes",
        "",
        "<!-- Generated by `lakehouse docs` from lakehouse/errors.py. Do not edit. -->",
        "",
        "Every error the lakehouse raises on purpose carries one of these codes. Services answer",
        'with `{"error": {"code", "name", "message", "param"}}` and the HTTP status below; the',
        "command line exits with the exit status below. Messages never contain patient data.",
        "",
        "| code | name | HTTP | exit | retryable | message | what to do |",
        "|---|---|---|---|---|---|---|",
    ]
    for code in ErrorCode:
        d = code.value
        lines.append(
            f"| `{d.id}` | `{code.name}` | {d.http_status} | {d.exit_status} | "
            f"{'yes' if d.retryable else 'no'} | {d.template} | {d.remedy} |"
        )
    return "\n".join(lines) + "\n"
