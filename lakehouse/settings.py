"""The one typed settings object.

Read once by an entrypoint (a job's ``main``, ``create_app``, a notebook's first cell, the
command line) and passed down. Environment variables use the prefix ``LAKEHOUSE_`` and ``__``
for nesting: ``LAKEHOUSE_SPARK__MASTER=spark://host:7077`` switches to a cluster,
``LAKEHOUSE_METASTORE__KIND=jdbc`` to an external metastore. This is the only module that
reads ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MetastoreKind = Literal["derby-embedded", "derby-server", "jdbc", "thrift", "in-memory"]


class SparkSettings(BaseModel):
    """How the Spark session is built (lakehouse/spark.py is the only builder)."""

    master: str = Field(
        "local[*]",
        description="Spark master: local[N], spark://host:7077, yarn or k8s://https://host.",
    )
    app_name: str = Field("clinical-lakehouse", description="Application name shown by Spark.")
    driver_memory: str = Field(
        "4g", description="Driver JVM heap (local mode: the whole engine's heap)."
    )
    shuffle_partitions: int = Field(
        16, ge=1, description="spark.sql.shuffle.partitions; AQE coalesces small ones."
    )
    ui_enabled: bool = Field(True, description="Serve the Spark web UI (port 4040 and up).")
    log_level: str = Field("WARN", description="Log level of Spark's JVM loggers.")
    driver_host: str | None = Field(
        None,
        description="Address the driver binds and advertises. Default: 127.0.0.1 in local "
        "mode (never expose the driver), Spark's own choice on a cluster.",
    )
    jars_dir: Path = Field(
        Path(".cache/jars"),
        description="Jar cache filled by `make jars` (Delta, Derby client, PostgreSQL JDBC). "
        "Relative paths are under LAKEHOUSE_HOME.",
    )
    python: str | None = Field(
        None,
        description="Python interpreter of the executors' Python workers. Default: the "
        "driver's own (the project's .venv); on a cluster, the path on the worker nodes.",
    )
    extra_jars: list[str] = Field(
        default_factory=list, description="More jars (paths or URLs) for spark.jars."
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Any further Spark conf, applied last (e.g. S3A endpoint, YARN queue, "
        'executor sizing). JSON in LAKEHOUSE_SPARK__CONF=\'{"spark.executor.memory":"8g"}\'.',
    )

    @property
    def is_local(self) -> bool:
        return self.master.startswith("local")


class MetastoreSettings(BaseModel):
    """Where table names live (the Hive metastore)."""

    kind: MetastoreKind = Field(
        "derby-embedded",
        description="derby-embedded (one process at a time, the default), derby-server "
        "(Derby network server, several processes), jdbc (PostgreSQL etc.), thrift (an "
        "external Hive metastore service), in-memory (no persistence; tests only).",
    )
    derby_host: str = Field("127.0.0.1", description="Derby network server host.")
    derby_port: int = Field(1527, description="Derby network server port.")
    jdbc_url: str | None = Field(
        None, description="JDBC URL of the metastore database when kind=jdbc."
    )
    jdbc_driver: str = Field("org.postgresql.Driver", description="JDBC driver class.")
    user: str | None = Field(None, description="Metastore database user.")
    password: SecretStr | None = Field(None, description="Metastore database password.")
    thrift_uris: str | None = Field(
        None, description="thrift://host:9083 of an external metastore when kind=thrift."
    )


class IngestSettings(BaseModel):
    """Bronze landing of source files (``lakehouse ingest``)."""

    landing_root: Path | None = Field(
        None,
        description="Root of the landing folders <root>/<source>/<institution>/<files>. "
        "Default: <data_dir>/synthetic/landing (the demo's synthetic hospital).",
    )
    sources: list[str] = Field(
        default_factory=lambda: ["lis", "emr", "notes", "pacs", "fhir", "csv", "his"],
        description="Source systems landed by a run without --source, in this order (his: "
        "the HIS database over JDBC, see the his settings).",
    )
    max_files_per_run: int = Field(
        100_000,
        ge=1,
        description="Most new files of one source taken by one run; the rest wait for the "
        "next run (bounds the driver's file list and the run's memory).",
    )
    lookback_days: int = Field(
        7,
        ge=0,
        description="Late-correction lookback of watermark (JDBC) extraction, in days.",
    )


class HisSettings(BaseModel):
    """The main hospital's HIS database, extracted into bronze over JDBC (``--source his``)."""

    jdbc_url: SecretStr | None = Field(
        None,
        description="JDBC URL of the HIS database (may hold credentials: never logged). "
        "Default: jdbc:sqlite:<data_dir>/synthetic/his/his.sqlite (the demo's synthetic HIS).",
    )
    user: str | None = Field(None, description="Database user (when not in the URL).")
    password: SecretStr | None = Field(None, description="Database password.")
    driver: str | None = Field(
        None,
        description="JDBC driver class. Default: chosen from the URL's dialect (sqlite, "
        "postgresql); set it for other databases and add their jar to spark.extra_jars.",
    )
    institution_code: str = Field("H0001", description="Institution whose HIS this is.")
    tables: list[str] = Field(
        default_factory=lambda: [
            *("departments", "staff", "patients", "visits", "transfers", "diagnoses"),
            *("orders", "prescriptions", "charges"),
        ],
        description="HIS tables extracted, each into bronze.his_<table>.",
    )
    watermark_column: str = Field(
        "updated_at", description="Column every extracted table stamps on each change."
    )
    partitions: int = Field(
        4, ge=1, description="Parallel JDBC reads per table (ranges of the watermark column)."
    )
    fetch_size: int = Field(1000, ge=1, description="Rows fetched per JDBC round trip.")
    reconcile_deletes: bool = Field(
        False,
        description="Scan every table's keys after extraction and write op='D' tombstones "
        "for rows gone from the source (also `lakehouse ingest --reconcile`).",
    )
    properties: dict[str, str] = Field(
        default_factory=dict,
        description="Further JDBC driver properties (e.g. connectTimeout, sslmode).",
    )


class SynthSettings(BaseModel):
    """The demo's synthetic hospital (``lakehouse synth`` and the demo's synth stage)."""

    patients: int = Field(
        1500,
        ge=1,
        description="Patients the demo's synthetic hospital has (1,500: enough held-out "
        "persons to compare the multimodal models).",
    )
    sites: int = Field(
        3,
        ge=1,
        le=9,
        description="Institutions: the main hospital plus members (FHIR and CSV alternately).",
    )
    seed: int = Field(42, description="Seed of every random stream: same seed, same bytes.")
    chunk_size: int = Field(
        100, ge=1, description="Patients generated and written at a time (bounds memory)."
    )
    clean: bool = Field(False, description="Inject no dirt (every defect rate 0).")


class SecuritySettings(BaseModel):
    """Identity, authorization and the audit log (lakehouse/governance)."""

    hash_algorithm: Literal["sm3", "sha256"] = Field(
        "sm3", description="Hash of the audit log's chain links: SM3 (GB/T 32905) or SHA-256."
    )
    audit_journal: bool = Field(
        True,
        description="Services make audit events durable in a local fsync'd journal and ship "
        "them to audit.events in batches (docs/adr/0017); False: one Delta commit per event.",
    )
    audit_ship_delay_s: float = Field(
        0.5,
        gt=0,
        description="How long a batch of journaled audit events gathers before it "
        "is committed to audit.events, in seconds.",
    )
    audit_max_backlog_s: float = Field(
        60.0,
        gt=0,
        description="Services refuse reads (LH-SEC-009) once the oldest audit "
        "event not yet in audit.events is older than this, in seconds.",
    )
    lockout_threshold: int = Field(
        10, ge=1, description="Consecutive failed logins that lock a local account."
    )
    lockout_minutes: int = Field(
        30, ge=1, description="Cooling-off period of a locked account, in minutes."
    )
    password_min_length: int = Field(12, ge=8, description="Shortest password accepted.")
    password_min_classes: int = Field(
        3, ge=1, le=4, description="Character classes (lower, upper, digit, symbol) required."
    )
    session_ttl_minutes: int = Field(
        60, ge=1, description="Lifetime of a session token, in minutes."
    )
    session_secret: SecretStr | None = Field(
        None,
        description="HMAC key of session tokens. Default: generated on first use into "
        "<data_dir>/secrets/session.key (mode 0600); never put it in the repository.",
    )
    secrets_dir: Path | None = Field(
        None,
        description="Folder of generated keys (session, audit pseudonyms). "
        "Default: <data_dir>/secrets.",
    )
    accounts_db: Path | None = Field(
        None,
        description="SQLite file of local accounts. Default: <data_dir>/governance/accounts.db.",
    )
    policy_file: Path | None = Field(
        None,
        description="Access policy (YAML). Default: lakehouse/governance/policies/default.yaml.",
    )
    oidc_issuer: str | None = Field(
        None, description="Issuer (iss) of the hospital SSO's tokens; None: SSO off."
    )
    oidc_audience: str | None = Field(None, description="Audience (aud) tokens must carry.")
    oidc_jwks_path: Path | None = Field(
        None, description="JWKS file (public keys) of the hospital SSO."
    )
    oidc_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256"], description="Signature algorithms accepted."
    )
    oidc_roles_claim: str = Field("roles", description="Claim holding the user's roles.")
    # Encryption at rest (Parquet modular encryption, docs/adr/0014) and TLS (governance/tls.py).
    encryption_enabled: bool = Field(
        False,
        description="Encrypt the columns chosen below in every Delta table's Parquet files "
        "(Parquet modular encryption, AES-GCM; footers encrypted too). Readers without the "
        "master keys get LH-ENC-003.",
    )
    encryption_key_file: Path | None = Field(
        None,
        description="Master key file (lines '<key id>:<base64 key>'). Default: generated on "
        "first use into <secrets_dir>/parquet-master.keys (mode 0600); never in the "
        "repository or in logs. On a cluster the path must exist on every executor.",
    )
    encryption_kms_client_class: str = Field(
        "lakehouse.kms.LakehouseFileKms",
        description="Parquet KmsClient class that supplies master keys: the default reads "
        "the key file; a hospital KMS plugs in its own class (jar in spark.extra_jars).",
    )
    encryption_kms_instance_url: str | None = Field(
        None, description="URL of the hospital KMS, passed to the KMS client class."
    )
    encryption_footer_key_id: str = Field(
        "lakehouse-footer", description="Master key id of encrypted Parquet footers."
    )
    encryption_column_key_id: str = Field(
        "lakehouse-phi", description="Master key id of the encrypted columns."
    )
    encryption_phi_tags: list[str] = Field(
        default_factory=list,
        description="PHI tags (name, identifier, contact, address, ...) whose columns are "
        "encrypted in every table.",
    )
    encryption_columns: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "silver.patient": ["id_card_no", "passport_no", "name", "phone", "address"]
        },
        description="Columns encrypted by name, per table (<layer>.<table> -> columns), in "
        "addition to encryption_phi_tags.",
    )
    tls_cert_file: Path | None = Field(
        None,
        description="The hospital's server certificate (PEM, chain included) for every HTTP "
        "service. Default: a self-signed certificate generated into <secrets_dir>/tls/.",
    )
    tls_key_file: Path | None = Field(
        None, description="Private key (PEM) of tls_cert_file; mode 0600."
    )
    tls_ca_file: Path | None = Field(
        None,
        description="CA bundle clients verify the services with. Default: tls_cert_file "
        "(the self-signed certificate is its own CA).",
    )
    tls_hostnames: list[str] = Field(
        default_factory=list,
        description="Host names the self-signed certificate is valid for, besides "
        "localhost and 127.0.0.1.",
    )


class DeidSettings(BaseModel):
    """De-identified views for analysts and model training (lakehouse/governance/deid)."""

    policy_file: Path | None = Field(
        None,
        description="What each PHI tag becomes in the views (YAML). Default: "
        "lakehouse/governance/policies/deid.yaml.",
    )
    shift_max_days: int = Field(
        365,
        ge=1,
        le=3650,
        description="Largest per-person date shift, in days: each person's shift is a fixed "
        "value in [-N, -1] or [1, N] derived from the keyed hash of the person id.",
    )
    k_threshold: int = Field(
        5,
        ge=2,
        description="Smallest equivalence class over a view's quasi-identifiers that "
        "`lakehouse deid check` accepts (k-anonymity).",
    )
    token_secret: SecretStr | None = Field(
        None,
        description="Key of person tokens and date shifts. Default: generated on first use "
        "into <secrets_dir>/deid-token.key (mode 0600); never put it in the repository.",
    )


class NlpSettings(BaseModel):
    """Clinical NLP pipelines (models/nlp, docs/nlp.md): an optional trained NER."""

    trained_dir: Path | None = Field(
        None,
        description="Folder of trained NER pipelines, <dir>/zh and <dir>/en (written by "
        "`python -m models.nlp.train --out`); relative to home. Default: rules only.",
    )
    merge: str | None = Field(
        None,
        description="How the trained NER's spans combine with the rules': rules, add (the "
        "rules win; trained spans fill gaps) or longest. Default: the policy the training run "
        "chose on its validation split.",
    )

    def trained_path(self, home: Path) -> Path | None:
        """``trained_dir`` resolved against ``home``; None when unset."""
        if self.trained_dir is None:
            return None
        return self.trained_dir if self.trained_dir.is_absolute() else home / self.trained_dir


class EmpiSettings(BaseModel):
    """Master patient index (lakehouse/empi, jobs/empi.py): model, thresholds, blocking."""

    model_path: Path | None = Field(
        None,
        description="Splink model (JSON: comparisons, m/u probabilities, prior) the linkage "
        "scores with. Default: the versioned model shipped in lakehouse/empi/models/.",
    )
    match_threshold: float = Field(
        0.95,
        gt=0,
        lt=1,
        description="Match probability at or above which two records are linked "
        "automatically (same person).",
    )
    review_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Match probability at or above which (and below match_threshold) a pair "
        "goes to the review queue silver.person_review.",
    )
    max_block_size: int = Field(
        1000,
        ge=2,
        description="Blocking keys shared by more records than this (a hospital's dummy "
        "phone, a placeholder ID number) form no candidate pairs.",
    )
    training_backend: Literal["duckdb", "spark"] = Field(
        "duckdb",
        description="Engine of `lakehouse empi train` (Splink EM): duckdb on a bounded "
        "sample, or spark (Splink's Spark backend; the comparisons use only built-in Spark "
        "SQL functions, so Splink's similarity jar is not needed).",
    )
    training_sample: int = Field(
        200_000,
        ge=100,
        description="Largest number of records `lakehouse empi train` takes to DuckDB.",
    )


class FeatureSettings(BaseModel):
    """The ML feature layer over the OMOP gold tables (docs/features.md)."""

    windows_days: list[int] = Field(
        default_factory=lambda: [30, 180, 365],
        description="Look-back windows (days before the index time) of every windowed feature.",
    )
    patient_index_dates: list[str] = Field(
        default_factory=list,
        description="Index dates (ISO yyyy-mm-dd, midnight in the hospital's time zone) of "
        "the patient-level cohort; empty: each person's last visit start.",
    )
    encounter_index: Literal["discharge", "admission"] = Field(
        "discharge",
        description="Index time of the encounter-level cohort (one row per inpatient visit): "
        "its discharge (features may use the stay) or its admission (history only).",
    )
    readmission_days: int = Field(
        30, ge=1, description="Horizon of the readmission label after an inpatient discharge."
    )
    top_concepts: int = Field(
        200,
        ge=0,
        description="Per domain, the concepts with the most persons that get per-concept "
        "features in features.patient_feature_values; 0: every concept.",
    )
    meds_shards: int = Field(
        4, ge=1, description="Parquet shards of the MEDS export (data/<n>.parquet)."
    )
    split_seed: int = Field(
        0, description="Salt of the subject hash that assigns MEDS train/tuning/held_out splits."
    )


class ModelSettings(BaseModel):
    """Tabular baseline training and batch scoring (models/tabular, docs/models.md)."""

    name: str = Field(
        "t2dm-recorded",
        description="Registered model name (and MLflow experiment) of the tabular baseline.",
    )
    label_codes: list[str] = Field(
        default_factory=lambda: ["ICD10:E11"],
        description="Label: a gold.condition_occurrence row at or after the index time whose "
        "condition_source_value, or whose concept's <vocabulary_id>:<concept_code> in "
        "gold.concept, starts with one of these (ICD-10 E11: type 2 diabetes).",
    )
    max_training_rows: int = Field(
        200_000,
        ge=10,
        description="Most cohort rows training collects to the driver (about 330 bytes "
        "each); more fails with LH-MDL-001 instead of exhausting the driver's memory.",
    )
    seed: int = Field(0, description="Random seed of every estimator (reproducible runs).")
    multimodal_name: str = Field(
        "copd-multimodal",
        description="Registered model name (and MLflow experiment) of the multimodal task's "
        "text, image, tabular and joint models (models/multimodal).",
    )
    multimodal_epochs: int = Field(
        12,
        ge=1,
        description="Training epochs of each multimodal model (the best tuning epoch is kept).",
    )
    torch_threads: int = Field(
        1,
        ge=1,
        description="CPU threads torch trains and predicts with (fixed and logged: "
        "a run reproduces its metrics with the same count). The nets are small: on a loaded "
        "2-core machine one thread trained 10-20x faster than two.",
    )


class QualitySettings(BaseModel):
    """Data-quality rules and OMOP DQD checks (lakehouse/quality, ``lakehouse dq run``)."""

    rules_dir: Path | None = Field(
        None,
        description="Folder (or file) of YAML rule files. Default: the rules shipped in "
        "lakehouse/quality/rules/.",
    )
    dqd_thresholds_dir: Path | None = Field(
        None,
        description="Folder of the OMOP DataQualityDashboard threshold CSVs "
        "(OMOP_CDMv5.4_Field_Level.csv, _Table_Level.csv, _Concept_Level.csv). Default: "
        "$LAKEHOUSE_REFDATA/omop-dqd-checks when LAKEHOUSE_REFDATA is set; without it the "
        "structural checks are derived from the CDM spec with threshold 0.",
    )
    sample_keys: int = Field(
        20,
        ge=0,
        description="Keys of failing rows kept per rule and run in dq.failures (the count "
        "in dq.results is always exact).",
    )
    fail_on: Literal["fatal", "error", "warning", "never"] = Field(
        "never",
        description="`lakehouse dq run` exits non-zero (LH-DQC-003) when a rule of this "
        "severity or above fails; never: report only.",
    )

    @model_validator(mode="after")
    def _refdata_thresholds(self) -> QualitySettings:
        # Not given at all (an explicit None stays None): the shared reference corpus.
        root = os.environ.get("LAKEHOUSE_REFDATA")
        if "dqd_thresholds_dir" not in self.model_fields_set and root:
            self.dqd_thresholds_dir = Path(root) / "omop-dqd-checks"
        return self


class ServeSettings(BaseModel):
    """The clinical assistant service (serving/, ``lakehouse serve``)."""

    host: str = Field("127.0.0.1", description="Address the service listens on.")
    port: int = Field(8443, ge=1, le=65535, description="Port the service listens on.")
    tls: bool = Field(
        True,
        description="Serve HTTPS (default) with the certificate of security.tls_cert_file or "
        "a generated self-signed one. false: plain HTTP, allowed on a loopback host only "
        "(tests).",
    )
    cookie_name: str = Field("lh_session", description="Name of the HttpOnly session cookie.")
    max_rows: int = Field(
        50, ge=1, le=1000, description="Most rows one assistant tool call returns."
    )
    lexicon_max_terms: int = Field(
        500_000,
        ge=1,
        description="Most vocabulary names and synonyms the grounded planner loads to "
        "recognize tests, drugs and diagnoses in questions.",
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Addresses of the reverse proxies (nginx, docs/adr/0029) whose "
        "X-Forwarded-For names the client: the address the service logs. Another sender's "
        "header is ignored. Add the proxy's address when nginx runs on another host.",
    )
    note_search: Literal["auto", "bm25", "hybrid"] = Field(
        "auto",
        description="How the assistant's note search ranks a patient's notes: bm25 (words "
        "only), hybrid (BM25 fused by reciprocal rank with the cosine ranking of dense "
        "embeddings, so a note about the same thing in other words is found too), or auto: "
        "hybrid when embedding_model_dir names a model, else bm25 (LSA fit on one patient's "
        "few notes adds 0.1-0.25 s per search and little recall). All rank only the notes the "
        "user may read.",
    )
    embedding_model_dir: Path | None = Field(
        None,
        description="Folder of a sentence-embedding model in Hugging Face transformers "
        "format (a multilingual one for Chinese notes; never downloaded) for hybrid note "
        "search, mean-pooled; relative to home. Default: LSA (TF-IDF over the jieba-segmented "
        "terms + truncated SVD) fit on the notes being searched.",
    )
    lsa_dims: int = Field(
        256,
        ge=2,
        le=2048,
        description="Dimensions of the default LSA embeddings (fewer when the notes have "
        "fewer documents or terms).",
    )
    rrf_k: int = Field(
        60,
        ge=0,
        description="The constant k of reciprocal rank fusion: a note scores the sum of "
        "1 / (k + rank) over the BM25 and dense rankings that hold it.",
    )


class AssistantLLMSettings(BaseModel):
    """The assistant's language model (LLM mode, docs/assistant.md); none: grounded mode."""

    endpoint: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible server (vLLM: http://127.0.0.1:8000/v1). "
        "None (default): grounded mode, no model.",
    )
    model: str = Field(
        "clinical-assistant", description="Model name the server serves (--served-model-name)."
    )
    api_key_file: Path | None = Field(
        None, description="File holding the server's API key (never logged)."
    )
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (when no file is given)."
    )
    timeout_s: float = Field(30.0, gt=0, description="Timeout of one model request, seconds.")
    retries: int = Field(
        1, ge=0, le=5, description="Retries of a request after a 5xx or connection error."
    )
    max_steps: int = Field(
        6, ge=1, le=20, description="Most tool calls the agent makes for one question."
    )
    max_tokens: int = Field(512, ge=16, description="Most tokens the model writes per turn.")
    allow_remote: bool = Field(
        False,
        description="Allow an endpoint outside loopback and private networks (patient data "
        "is sent to the model).",
    )


class MlflowSettings(BaseModel):
    """The MLflow tracking server and model registry (lakehouse/tracking, docs/mlflow.md)."""

    backend_store_uri: SecretStr | None = Field(
        None,
        description="Database of runs and registered models (SQLAlchemy URL; may hold a "
        "password: never logged). Default: sqlite:///<data_dir>/mlflow/mlflow.db; a hospital "
        "uses postgresql+psycopg://user:password@host:5432/mlflow.",
    )
    artifacts_destination: str | None = Field(
        None,
        description="Where the server stores artifacts (models, plots): a path or any URI "
        "MLflow supports (s3://..., hdfs://...). Clients reach it only through the server "
        "(proxied, mlflow-artifacts:/). Default: <data_dir>/mlflow/artifacts.",
    )
    host: str = Field(
        "127.0.0.1",
        description="Address `lakehouse mlflow serve` binds; set allowed_hosts too when "
        "it is not loopback.",
    )
    port: int = Field(5000, ge=1, le=65535, description="Port of the tracking server.")
    workers: int = Field(1, ge=1, description="Server worker processes.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host headers the server accepts (its DNS-rebinding guard). Empty: "
        "MLflow's default (localhost and private addresses).",
    )
    tracking_uri: str | None = Field(
        None,
        description="Tracking URI clients (training, scoring) use: an external server's "
        "http(s)://host:port. Default: http://<host>:<port> of the project's own server.",
    )
    start_timeout_s: float = Field(
        180.0, gt=0, description="How long `serve` waits for the server's /health, in seconds."
    )
    job_execution: bool = Field(
        False,
        description="Run MLflow's server-side job runner (GenAI evaluation and trace jobs: "
        "about eight more Python processes). Tracking and the registry do not need it.",
    )

    def server_environment(self, backend_store_uri: str) -> dict[str, str]:
        """The server process's environment: this one's plus the backend store URI, which
        travels there rather than on the command line (where `ps` would show a password)."""
        return {
            **os.environ,
            "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if self.job_execution else "false",
        }


class KnowledgeSettings(BaseModel):
    """The knowledge base (lakehouse/knowledge, ``lakehouse kb``, ``/api/kb``)."""

    root: Path | None = Field(
        None,
        description="Folder of the users' documents (hospital SOPs), one subfolder per "
        "section, each with an _access.yaml. Default: <data_dir>/knowledge; relative paths "
        "are under data_dir. The index is <data_dir>/search/knowledge.db.",
    )
    max_file_mb: float = Field(
        20, gt=0, le=1024, description="Largest document (MB) added or indexed."
    )
    refresh_s: int = Field(
        60,
        ge=0,
        description="The service re-reads the tree (changed files only) at most this often "
        "(seconds) when searched; 0: on every request.",
    )


class BackupSettings(BaseModel):
    """Backups and one-step restore (lakehouse/backup, docs/operations.md, ADR 0018)."""

    destination: Path | None = Field(
        None,
        description="Folder of the backups. Default: <data_dir>-backups beside the data "
        "folder (outside the warehouse, so wiping the data folder keeps them); production "
        "points it at another disk or host (NFS). Relative paths are under data_dir.",
    )
    keep_full: int = Field(
        7,
        ge=1,
        description="Full backups kept; older fulls and the incrementals built on them are "
        "deleted after each successful full backup.",
    )
    interval_hours: float = Field(
        24.0,
        gt=0,
        description="How often backups run (the schedule's period). Every table must keep "
        "removed files (delta.deletedFileRetentionDuration) longer than this.",
    )
    schedule: str = Field(
        "*-*-* 02:00:00",
        description="Schedule hint (systemd OnCalendar) used by docs/operations.md's timer.",
    )
    retention_check: Literal["fail", "warn"] = Field(
        "fail",
        description="A table whose removed-file retention is shorter than interval_hours: "
        "fail the backup (LH-BAK-004) or only warn.",
    )
    verify_files: bool = Field(
        True,
        description="Restore re-reads every restored file and checks its SHA-256 (besides "
        "version, row count and checksum of every table).",
    )
    pg_dump: Path | None = Field(
        None,
        description="pg_dump executable: when set and MLflow's backend store is PostgreSQL, "
        "a backup includes its custom-format dump. Unset: that database is the DBA's backup.",
    )

    def pg_environment(self, password: str) -> dict[str, str]:
        """pg_dump's environment: this one's plus the password (never on its command line)."""
        return {**os.environ, "PGPASSWORD": password}


class StandbySettings(BaseModel):
    """Hot standby of the Delta tables (lakehouse/standby, docs/operations.md, ADR 0022)."""

    target: Path | None = Field(
        None,
        description="Root of the standby site: tables go to <target>/warehouse/<same "
        "relative path>, the shipper's status and metrics to <target>/standby. Default: "
        "<data_dir>-standby; production points it at another disk or host (NFS). Relative "
        "paths are under data_dir.",
    )
    poll_interval_s: float = Field(
        1.0,
        gt=0,
        description="Seconds between two shipping cycles (each cycle checks every table for "
        "its next commit: one stat per table).",
    )
    sweep_interval_s: float = Field(
        30.0,
        gt=0,
        description="Seconds between two listings of an idle table's log for checkpoints and "
        ".crc files written after their commit (a table that just shipped is listed every "
        "cycle for a while).",
    )
    include: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Tables shipped: shell patterns on schema.table (managed tables found "
        "under the warehouse, <schema>.db/<table>).",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Tables not shipped: shell patterns on schema.table."
    )
    verify_hash: bool = Field(
        True,
        description="Re-read every copied file and compare its SHA-256 with the bytes read "
        "from the primary before it is renamed into place.",
    )
    max_lag_s: float = Field(
        5.0,
        gt=0,
        description="Lag above which the status says 'lagging' (and the metric "
        "lakehouse_standby_healthy is 0).",
    )
    failover_wait_s: float = Field(
        60.0,
        ge=0,
        description="How long `lakehouse failover` waits for a running shipper to stop.",
    )


class SparkConnectSettings(BaseModel):
    """Spark Connect for notebooks (``lakehouse spark-connect``, docs/adr/0033): a gRPC
    gateway in front of the Spark Connect server, every plan guarded and audited."""

    host: str = Field("127.0.0.1", description="Address the Spark Connect gateway listens on.")
    port: int = Field(15002, ge=1, le=65535, description="Port of the gateway (gRPC).")
    tls: bool = Field(
        True,
        description="TLS (1.2 or newer) on the gateway with the certificate of lakehouse serve; "
        "clients connect with use_ssl=true. Off (the bearer token in clear) is allowed only "
        "when host is a loopback address.",
    )
    purpose: str = Field(
        "analytics", description="Purpose of use every read through the gateway is audited with."
    )
    max_workers: int = Field(
        16, ge=1, description="Requests served at once (a streaming result holds one until done)."
    )
    max_message_mb: int = Field(
        128, ge=1, le=2047, description="Largest request (plan, local data) the gateway accepts."
    )
    settable_confs: tuple[str, ...] = Field(
        (
            "spark.sql.session.timeZone",
            "spark.sql.shuffle.partitions",
            "spark.sql.ansi.enabled",
            "spark.sql.caseSensitive",
            "spark.sql.execution.arrow.",
            "spark.sql.execution.pandas.",
            "spark.sql.repl.eagerEval.",
            "spark.sql.pyspark.",
            "spark.sql.adaptive.",
            "spark.sql.autoBroadcastJoinThreshold",
            "spark.sql.datetime.java8API.enabled",
        ),
        description="Session settings a notebook may change (exact names, or prefixes ending "
        "in a dot); every other set is refused.",
    )


class SqlEndpointSettings(BaseModel):
    """The SQL endpoint for analysts and BI tools (``lakehouse sql-endpoint``, docs/adr/0030):
    HiveServer2's Thrift protocol, every statement through the guarded, audited read path."""

    host: str = Field("127.0.0.1", description="Address the SQL endpoint listens on.")
    port: int = Field(
        10000, ge=1, le=65535, description="Port of the HiveServer2 (Thrift binary) listener."
    )
    max_rows: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        description="Most rows one statement returns; a result that reaches it says so in "
        "the statement's log (LH-SQL-004). The gateway holds a statement's rows until it is "
        "closed, so this bounds its memory per open statement.",
    )
    page_rows: int = Field(
        10_000,
        ge=1,
        description="Most rows one FetchResults call returns (clients ask for fewer, e.g. "
        "beeline's fetch size).",
    )
    idle_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="A connection that sends nothing this long is closed with its sessions "
        "and their results.",
    )
    max_connections: int = Field(
        32, ge=1, description="Most client connections served at once; more wait to be accepted."
    )
    purpose: str = Field(
        "analytics", description="Purpose of use every read through the endpoint is audited with."
    )
    tls: bool = Field(
        True,
        description="TLS (1.2 or newer) on the listener, with the certificate of lakehouse "
        "serve (security.tls_cert_file/tls_key_file, or the generated self-signed one); "
        "clients connect with ssl=true. Off (plain TCP, the password in clear) is allowed "
        "only when host is a loopback address.",
    )


class ConsoleSettings(BaseModel):
    """The operations console and its Prometheus endpoint (serving/console, docs/operations.md)."""

    cache_ttl_s: float = Field(
        30.0,
        ge=0,
        description="Seconds a figure read from the tables, the backups, the standby status "
        "or MLflow is reused before it is read again (a scrape or a page load within that time "
        "runs no Spark job). 0 reads on every request.",
    )
    schemas: list[str] = Field(
        default_factory=lambda: [
            "bronze",
            "silver",
            "gold",
            "vocab",
            "governance",
            "features",
            "deid",
            "ops",
            "dq",
            "audit",
        ],
        description="Schemas whose tables the console lists with their versions and sizes.",
    )
    max_tables: int = Field(
        500, ge=1, description="Most tables listed (and exported as metrics), by name order."
    )
    runs_days: int = Field(
        7, ge=1, description="Days of ops.job_runs the runs panel and its metrics cover."
    )
    dq_runs: int = Field(10, ge=1, description="Data-quality runs shown in the trend.")
    alert_days: int = Field(
        14, ge=1, description="Days of break-glass and refusal counts shown per day."
    )
    probe_timeout_s: float = Field(
        2.0, gt=0, description="Timeout of one reachability probe (MLflow, the LLM endpoint)."
    )
    warm_on_start: bool = Field(
        True,
        description="lakehouse serve reads every panel once in the background when it starts, "
        "so the first page or scrape answers from the cache instead of waiting for Spark.",
    )
    metrics_token_file: Path | None = Field(
        None,
        description="File holding the bearer token Prometheus sends to /metrics (a scrape "
        "needs no user session). Unset: only a signed-in admin or auditor may read /metrics.",
    )


class Settings(BaseSettings):
    """Everything configurable, each with a default that runs on one machine."""

    model_config = SettingsConfigDict(
        env_prefix="LAKEHOUSE_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    home: Path = Field(
        default_factory=Path.cwd,
        description="Project home; relative paths in other settings are under it.",
    )
    data_dir: Path = Field(
        Path("var"),
        description="Local data root: warehouse, metastore, logs, checkpoints, landing.",
    )
    warehouse_uri: str | None = Field(
        None,
        description="Where managed tables are stored: a local path (default "
        "<data_dir>/warehouse), hdfs://... or s3a://...",
    )
    timezone: str = Field(
        "Asia/Shanghai", description="The hospital's time zone; Spark's session time zone."
    )
    log_level: str = Field("INFO", description="Log level of the lakehouse's own loggers.")
    java_home: Path | None = Field(
        None,
        validation_alias=AliasChoices("LAKEHOUSE_JAVA_HOME", "JAVA_HOME"),
        description="Java installation (JAVA_HOME); default: `java` on PATH.",
    )
    spark: SparkSettings = Field(default_factory=SparkSettings)  # type: ignore[arg-type]
    metastore: MetastoreSettings = Field(default_factory=MetastoreSettings)  # type: ignore[arg-type]
    synth: SynthSettings = Field(default_factory=SynthSettings)  # type: ignore[arg-type]
    ingest: IngestSettings = Field(default_factory=IngestSettings)  # type: ignore[arg-type]
    security: SecuritySettings = Field(default_factory=SecuritySettings)  # type: ignore[arg-type]
    his: HisSettings = Field(default_factory=HisSettings)  # type: ignore[arg-type]
    deid: DeidSettings = Field(default_factory=DeidSettings)  # type: ignore[arg-type]
    nlp: NlpSettings = Field(default_factory=NlpSettings)  # type: ignore[arg-type]
    empi: EmpiSettings = Field(default_factory=EmpiSettings)  # type: ignore[arg-type]
    quality: QualitySettings = Field(default_factory=QualitySettings)  # type: ignore[arg-type]
    features: FeatureSettings = Field(default_factory=FeatureSettings)  # type: ignore[arg-type]
    models: ModelSettings = Field(default_factory=ModelSettings)  # type: ignore[arg-type]
    serve: ServeSettings = Field(default_factory=ServeSettings)  # type: ignore[arg-type]
    llm: AssistantLLMSettings = Field(default_factory=AssistantLLMSettings)  # type: ignore[arg-type]
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)  # type: ignore[arg-type]
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)  # type: ignore[arg-type]
    backup: BackupSettings = Field(default_factory=BackupSettings)  # type: ignore[arg-type]
    standby: StandbySettings = Field(default_factory=StandbySettings)  # type: ignore[arg-type]
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)  # type: ignore[arg-type]
    sql_endpoint: SqlEndpointSettings = Field(default_factory=SqlEndpointSettings)  # type: ignore[arg-type]
    spark_connect: SparkConnectSettings = Field(default_factory=SparkConnectSettings)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if not self.data_dir.is_absolute():
            self.data_dir = self.home / self.data_dir
        if not self.spark.jars_dir.is_absolute():
            self.spark.jars_dir = self.home / self.spark.jars_dir
        if self.ingest.landing_root is None:
            self.ingest.landing_root = self.data_dir / "synthetic" / "landing"
        elif not self.ingest.landing_root.is_absolute():
            self.ingest.landing_root = self.home / self.ingest.landing_root
        sec = self.security
        sec.secrets_dir = self._under_data(sec.secrets_dir, Path("secrets"))
        sec.accounts_db = self._under_data(sec.accounts_db, Path("governance/accounts.db"))
        if self.metastore.kind == "jdbc" and not self.metastore.jdbc_url:
            raise ValueError("metastore.jdbc_url is required when metastore.kind is 'jdbc'")
        if self.metastore.kind == "thrift" and not self.metastore.thrift_uris:
            raise ValueError("metastore.thrift_uris is required when metastore.kind is 'thrift'")
        return self

    def _under_data(self, path: Path | None, default: Path) -> Path:
        path = default if path is None else path
        return path if path.is_absolute() else self.data_dir / path

    @property
    def warehouse(self) -> str:
        """The warehouse location as Spark expects it."""
        return self.warehouse_uri or str(self.data_dir / "warehouse")

    @property
    def metastore_dir(self) -> Path:
        """Folder of the embedded (or locally served) Derby metastore database."""
        return self.data_dir / "metastore_db"

    @property
    def landing_root(self) -> Path:
        """Root of the landing folders (resolved by the validator, never None)."""
        assert self.ingest.landing_root is not None
        return self.ingest.landing_root

    @property
    def his_jdbc_url(self) -> str:
        """JDBC URL of the HIS (default: the synthetic hospital's SQLite file). Secret."""
        if self.his.jdbc_url is not None:
            return self.his.jdbc_url.get_secret_value()
        return f"jdbc:sqlite:{self.data_dir / 'synthetic' / 'his' / 'his.sqlite'}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings` from the environment, turning validation errors into codes."""
    from pydantic import ValidationError

    from lakehouse.errors import ErrorCode, error

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        # The message names the setting and the rule, never the value given.
        raise error(ErrorCode.CONFIG_INVALID, setting=where, reason=first["msg"]) from None


def environment_path() -> str:
    """The PATH searched for executables (kept here: only this module reads os.environ)."""
    return os.environ.get("PATH", "")
