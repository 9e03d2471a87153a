"""``lakehouse``: doctor, demo, ingest, sql, docs, settings, version.

Every failure exits with the exit status of its catalogued code and prints the code, the
message and what to do; never a stack trace for an expected problem.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lakehouse import __version__
from lakehouse.errors import LakehouseError
from lakehouse.logging import configure_logging
from lakehouse.settings import Settings, load_settings
from lakehouse_cli.synth import synth

app = typer.Typer(
    name="lakehouse",
    help="Clinical data lakehouse: land, conform, govern and serve hospital data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


def _settings() -> Settings:
    cfg = load_settings()
    configure_logging(cfg.log_level)
    return cfg


def _guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; a LakehouseError becomes a one-screen message and its exit status."""
    try:
        return fn()
    except LakehouseError as exc:
        typer.echo(f"error {exc}", err=True)
        if exc.code.value.remedy:
            typer.echo(f"  what to do: {exc.code.value.remedy}", err=True)
        raise typer.Exit(exc.code.exit_status) from None


@app.command()
def doctor(
    no_spark: Annotated[
        bool, typer.Option("--no-spark", help="Skip the catalog check (starts Spark).")
    ] = False,
) -> None:
    """Check Java, jars, storage and the catalog; name whatever is missing."""
    from lakehouse.doctor import exit_status, run_checks

    cfg = _guard(_settings)
    results = run_checks(cfg, with_spark=not no_spark)
    marks = {"ok": "ok  ", "failed": "FAIL", "skipped": "skip"}
    for r in results:
        typer.echo(f"[{marks[r.status]}] {r.name:<16} {r.detail}")
        if r.error is not None and r.error.code.value.remedy:
            typer.echo(f"       what to do: {r.error.code.value.remedy}")
    status = exit_status(results)
    typer.echo("all checks passed" if status == 0 else "doctor found a problem")
    raise typer.Exit(status)


@app.command()
def demo(
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="Run only this stage (repeatable).")
    ] = None,
) -> None:
    """Run every pipeline stage end to end on the configured (default: embedded) platform."""
    from jobs import demo as demo_job
    from lakehouse.spark import build_spark

    def nlp_stage(spark: Any, cfg: Settings) -> dict[str, int]:
        from models.nlp import spark_job

        return spark_job.run(spark, cfg).counts()

    pipeline = demo_job.with_stage(
        demo_job.Stage(
            "nlp", "clinical NLP over notes: gold.note_nlp, de-identified text", nlp_stage
        ),
        after="gold",
    )
    pipeline = _with_train_stage(pipeline)
    pipeline = _with_assistant_stage(pipeline)

    def go() -> None:
        cfg = _settings()
        stages = demo_job.select_stages(stage, pipeline)
        typer.echo(f"lakehouse {__version__} demo: stages {', '.join(s.name for s in stages)}")
        for s in stages:
            typer.echo(f"  - {s.name}: {s.summary}")
        spark = build_spark(cfg)
        report = demo_job.run(spark, cfg, stages=stage, pipeline=pipeline)
        typer.echo(demo_job.describe(report, cfg))

    _guard(go)


@app.command()
def ingest(
    source: Annotated[
        str | None, typer.Option("--source", help="Land only this source (lis, emr, his, ...).")
    ] = None,
    reconcile: Annotated[
        bool | None,
        typer.Option(
            "--reconcile/--no-reconcile",
            help="After the HIS extraction, write tombstones for rows deleted at the source "
            "(default: the his.reconcile_deletes setting).",
        ),
    ] = None,
) -> None:
    """Land new landing files of every source (or one) into bronze, exactly once; extract
    the HIS database by watermark."""
    from jobs import ingest as ingest_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        spark = build_spark(cfg)
        report = ingest_job.run(spark, cfg, source=source, reconcile=reconcile)
        typer.echo(ingest_job.describe(report))

    _guard(go)


@app.command()
def silver(
    full: Annotated[bool, typer.Option("--full", help="Reprocess every bronze row.")] = False,
    bronze: Annotated[
        list[str] | None,
        typer.Option("--bronze", help="Process only this bronze table (repeatable)."),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            "--truth",
            help="After the run, score silver against a synthetic hospital's truth folder.",
        ),
    ] = None,
) -> None:
    """Turn bronze changes into the conformed, coded silver tables (incremental MERGE)."""
    from jobs import silver as silver_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        spark = build_spark(cfg)
        typer.echo(silver_job.describe(silver_job.run(spark, cfg, full=full, bronze=bronze)))
        if truth is not None:
            from lakehouse.silver.evaluate import describe, evaluate

            typer.echo(describe(evaluate(spark, truth)))

    _guard(go)


@app.command()
def gold(
    full: Annotated[bool, typer.Option("--full", help="Rebuild every OMOP row.")] = False,
    truth: Annotated[
        Path | None,
        typer.Option(
            "--truth",
            help="After the run, reconcile gold counts with a synthetic hospital's truth folder.",
        ),
    ] = None,
) -> None:
    """Build the OMOP CDM v5.4 gold tables from silver (incremental, stable ids)."""
    from jobs import gold as gold_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        spark = build_spark(cfg)
        typer.echo(gold_job.describe(gold_job.run(spark, cfg, full=full)))
        if truth is not None:
            from lakehouse.gold.evaluate import describe, reconcile

            typer.echo(describe(reconcile(spark, truth)))

    _guard(go)


@app.command()
def nlp(
    full: Annotated[bool, typer.Option("--full", help="Reprocess every note.")] = False,
) -> None:
    """Clinical NLP over silver.note: gold.note_nlp, silver.note_deid, silver.note_problem."""
    from lakehouse.spark import build_spark
    from models.nlp import spark_job as nlp_job

    def go() -> None:
        cfg = _settings()
        typer.echo(nlp_job.describe(nlp_job.run(build_spark(cfg), cfg, full=full)))

    _guard(go)


@app.command("nlp-train")
def nlp_train(
    patients: Annotated[int, typer.Option(help="Patients of the training hospital.")] = 400,
    seed: Annotated[int, typer.Option(help="Training seed (evaluation seeds refused).")] = 7001,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 8,
    out: Annotated[Path | None, typer.Option(help="Also write <out>/zh, <out>/en.")] = None,
) -> None:
    """Train the clinical NER per language, log to MLflow, register clinical-ner-<lang>."""
    import dataclasses

    from models.nlp import train as nlp_training

    def go() -> None:
        cfg = _settings()
        config = dataclasses.replace(
            nlp_training.TrainConfig(), patients=patients, seed=seed, epochs=epochs
        )
        report = nlp_training.train(config)
        if out is not None:
            nlp_training.save(report, out)
        typer.echo(nlp_training.log_and_register(cfg, report).describe())

    _guard(go)


app.command("synth")(synth)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A Spark SQL statement.")],
    limit: Annotated[int, typer.Option(help="Rows to show at most.")] = 50,
) -> None:
    """Run one Spark SQL statement against the catalog and print the result."""
    from lakehouse.spark import build_spark

    def go() -> None:
        spark = build_spark(_settings())
        spark.sql(query).show(limit, truncate=False)

    _guard(go)


@app.command()
def docs(
    check: Annotated[
        bool, typer.Option("--check", help="Fail if a generated document is stale.")
    ] = False,
    docs_dir: Annotated[Path, typer.Option(help="Folder of the documents.")] = Path("docs"),
) -> None:
    """Generate the reference docs: error codes, data dictionary, settings, change-impact
    matrix, OpenAPI specs (docs/openapi/) and interfaces."""
    from lakehouse.reference import stale_documents, write_documents
    from serving.openapi import openapi_documents

    extra = openapi_documents()
    if check:
        stale = stale_documents(docs_dir, extra)
        if stale:
            typer.echo(f"stale generated documents: {', '.join(stale)}; run `lakehouse docs`")
            raise typer.Exit(1)
        typer.echo("generated documents are current")
        return
    for path in write_documents(docs_dir, extra):
        typer.echo(f"wrote {path}")


@app.command()
def settings() -> None:
    """Print the effective settings (secrets masked)."""
    cfg = _guard(_settings)
    data: dict[str, Any] = json.loads(cfg.model_dump_json())
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@app.command()
def version() -> None:
    """Print the version of the lakehouse and of its engine."""
    from lakehouse.environment import delta_version, pyspark_version

    typer.echo(
        f"lakehouse {__version__} (pyspark {pyspark_version()}, delta-spark {delta_version()})"
    )


metastore_app = typer.Typer(
    help="Serve the Hive metastore's Derby database to several processes (loopback only).",
    no_args_is_help=True,
)
app.add_typer(metastore_app, name="metastore")


@metastore_app.command("serve")
def metastore_serve() -> None:
    """Run the Derby network server in the foreground until interrupted."""
    from lakehouse.metastore import derby_server

    server = _guard(lambda: derby_server(_settings()))
    process = _guard(server.start)
    typer.echo(
        f"metastore served on {server.host}:{server.port}; "
        "other processes set LAKEHOUSE_METASTORE__KIND=derby-server"
    )
    try:
        process.wait()
    except KeyboardInterrupt:
        server.stop()
        process.wait(timeout=30)


@metastore_app.command("stop")
def metastore_stop() -> None:
    """Shut the Derby network server down."""
    from lakehouse.metastore import derby_server

    server = _guard(lambda: derby_server(_settings()))
    stopped = server.stop()
    typer.echo("stopped" if stopped else "no server was running")


@metastore_app.command("status")
def metastore_status() -> None:
    """Exit 0 when the Derby network server answers, 69 when it does not."""
    from lakehouse.metastore import derby_server

    server = _guard(lambda: derby_server(_settings()))
    up = server.ping()
    typer.echo(f"{server.host}:{server.port} {'answers' if up else 'does not answer'}")
    raise typer.Exit(0 if up else 69)


mlflow_app = typer.Typer(
    help="The MLflow tracking server and model registry (docs/mlflow.md).", no_args_is_help=True
)
app.add_typer(mlflow_app, name="mlflow")


@mlflow_app.command("serve")
def mlflow_serve() -> None:
    """Run the MLflow tracking server in the foreground until interrupted (Ctrl-C, SIGTERM)."""
    import signal

    from lakehouse.tracking import TrackingServer

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (systemd, kill) stops the server like Ctrl-C

    server = _guard(lambda: TrackingServer(_settings()))
    signal.signal(signal.SIGTERM, terminate)
    try:
        _guard(server.start)  # interrupted while starting: start() stops what it started
        typer.echo(
            f"mlflow tracking server at {server.url} (backend {server.backend}, artifacts "
            f"{server.artifacts}); clients set LAKEHOUSE_MLFLOW__TRACKING_URI={server.url}"
        )
        status = server.wait()
    except KeyboardInterrupt:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut stop()
        server.stop()
        typer.echo("stopped")
        return
    server.stop()
    raise typer.Exit(status)


@mlflow_app.command("status")
def mlflow_status() -> None:
    """Exit 0 when the configured tracking server answers, 69 when it does not."""
    from lakehouse.tracking import ping, redact_uri, tracking_uri
    from lakehouse.tracking.client import server_version

    uri = tracking_uri(_guard(_settings))
    up = ping(uri)
    version = server_version(uri) if up else None
    shown = redact_uri(uri)
    typer.echo(f"{shown} answers (MLflow {version})" if up else f"{shown} does not answer")
    raise typer.Exit(0 if up else 69)


audit_app = typer.Typer(help="The hash-chained audit log (audit.events).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain in Spark; exit non-zero at the first break."""
    from lakehouse.governance.audit_delta import anchor_path, require_intact, verify
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        report = require_intact(verify(build_spark(cfg), anchor=anchor_path(cfg)))
        typer.echo(f"{report.table}: {report.rows} events, hash chain intact")

    _guard(go)


accounts_app = typer.Typer(
    help="Local accounts of the services (argon2 passwords; TOTP for the privileged roles).",
    no_args_is_help=True,
)
app.add_typer(accounts_app, name="accounts")

#: Who manages accounts from the command line: the host's operator, who already holds the
#: data folder and its keys. Every change is still an audited admin action under this name.
OPERATOR = "local-operator"


def _operator_identity() -> tuple[Any, Any]:
    from lakehouse.governance.audit_delta import audit_log
    from lakehouse.governance.identity import identity_service
    from lakehouse.governance.sessions import Principal
    from lakehouse.spark import build_spark

    cfg = _settings()
    return identity_service(cfg, audit_log(build_spark(cfg), cfg)), Principal(OPERATOR, "admin")


@accounts_app.command("create")
def accounts_create(
    username: Annotated[str, typer.Argument(help="Unique account name.")],
    role: Annotated[
        list[str],
        typer.Option(
            "--role",
            help="A role (repeat for several): clinician, nurse, "
            "analyst, data_scientist, exporter, admin, auditor.",
        ),
    ],
    department: Annotated[
        str | None, typer.Option("--department", help="Department code (clinicians, nurses).")
    ] = None,
    institution: Annotated[
        list[str] | None, typer.Option("--institution", help="Institution code (repeat).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create an account; the password is prompted (never an argument). Exporter, admin and
    auditor accounts get a TOTP secret to enrol, printed once as an otpauth:// URI."""
    import pyotp

    def go() -> None:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        identity, operator = _operator_identity()
        secret = identity.create_account(
            operator, username, password, tuple(role),
            department=department, institutions=tuple(institution or ()),
        )  # fmt: skip
        typer.echo(f"account {username} created ({', '.join(role)})")
        if secret:
            uri = pyotp.TOTP(secret).provisioning_uri(
                name=username, issuer_name="clinical-lakehouse"
            )
            typer.echo(f"enrol this second factor in an authenticator app, now: {uri}")

    _guard(go)


@accounts_app.command("unlock")
def accounts_unlock(
    username: Annotated[str, typer.Argument(help="Account to unlock.")],
) -> None:
    """Clear an account's lockout after repeated failed logins (an audited admin action)."""

    def go() -> None:
        identity, operator = _operator_identity()
        identity.unlock(operator, username)
        typer.echo(f"account {username} unlocked")

    _guard(go)


deid_app = typer.Typer(
    help="De-identified views deid.<layer>_<table> for analysts and model training.",
    no_args_is_help=True,
)
app.add_typer(deid_app, name="deid")


@deid_app.command("refresh")
def deid_refresh() -> None:
    """Key new persons (governance.person_keys) and create or replace every deid view."""
    from jobs import deid as deid_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        typer.echo(deid_job.describe_refresh(deid_job.refresh(build_spark(cfg), cfg)))

    _guard(go)


@deid_app.command("check")
def deid_check(
    tables: Annotated[
        list[str] | None, typer.Argument(help="Source tables or views (default: every view).")
    ] = None,
) -> None:
    """k-anonymity of the views into dq.k_anonymity; exit non-zero below deid.k_threshold."""
    from jobs import deid as deid_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        spark = build_spark(cfg)
        try:
            report = deid_job.check(spark, cfg, tables=tables or None)
        except LakehouseError as exc:  # below k: show every view's figures, then fail
            if isinstance(getattr(exc, "report", None), deid_job.CheckReport):
                typer.echo(deid_job.describe_check(exc.report))  # type: ignore[attr-defined]
            raise
        typer.echo(deid_job.describe_check(report))

    _guard(go)


@deid_app.command("materialize")
def deid_materialize(
    table: Annotated[str, typer.Argument(help="Source table or its view.")],
) -> None:
    """MERGE one view into features.deid_<layer>_<table>; log versions in ops.deid_snapshots."""
    from jobs import deid as deid_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        typer.echo(deid_job.describe_snapshot(deid_job.materialize(build_spark(cfg), cfg, table)))

    _guard(go)


vocab_app = typer.Typer(
    help="The terminology service: load vocabularies, review and accept unmapped codes.",
    no_args_is_help=True,
)
app.add_typer(vocab_app, name="vocab")


@vocab_app.command("load")
def vocab_load(
    path: Annotated[Path | None, typer.Argument(help="File or folder (not for demo).")] = None,
    kind: Annotated[
        str, typer.Option(help="demo, icd10cm, athena, codes, loinc, local-map or units.")
    ] = "demo",
    edition: Annotated[str | None, typer.Option(help="Edition name of the file.")] = None,
    valid_from: Annotated[
        str, typer.Option(help="First day the edition is valid (YYYY-MM-DD).")
    ] = "1970-01-01",
    vocabulary: Annotated[
        str | None, typer.Option(help="Vocabulary id of a code list (--kind codes).")
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the file.")] = "utf-8",
) -> None:
    """Load the demo vocabulary, or one vocabulary file, as an edition (idempotent)."""
    from datetime import date

    from jobs import terminology as terminology_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        report = terminology_job.run(
            build_spark(cfg),
            cfg,
            kind=kind,
            path=path,
            edition=edition,
            valid_from=date.fromisoformat(valid_from),
            vocabulary=vocabulary,
            encoding=encoding,
        )
        typer.echo(terminology_job.describe(report))

    _guard(go)


@vocab_app.command("review")
def vocab_review(
    limit: Annotated[int, typer.Option(help="Items to show at most.")] = 50,
) -> None:
    """List open review-queue items (unmapped codes) with their best candidates."""
    from lakehouse.spark import build_spark
    from lakehouse.terminology import open_items

    def go() -> None:
        spark = build_spark(_settings())
        for r in open_items(spark, limit=limit).collect():
            typer.echo(
                f"{r['institution_code']} {r['source_vocabulary_id']} {r['source_code']} "
                f"({r['occurrences']} seen)"
            )
            for c in r["candidates"] or []:
                typer.echo(
                    f"    {c['concept_id']} {c['concept_code']} {c['concept_name']} "
                    f"{c['score']:.3f} {c['method']}"
                )

    _guard(go)


@vocab_app.command("accept")
def vocab_accept(
    institution: Annotated[str, typer.Argument(help="Institution code of the item.")],
    vocabulary: Annotated[str, typer.Argument(help="Vocabulary id, e.g. LOCAL:A0002:LAB.")],
    code: Annotated[str, typer.Argument(help="The unmapped code.")],
    concept_id: Annotated[int, typer.Argument(help="Concept to map it to.")],
    by: Annotated[str, typer.Option("--by", help="Reviewer's user name.")],
) -> None:
    """Accept a mapping: writes source_to_concept_map and closes the item."""
    from lakehouse.spark import build_spark
    from lakehouse.terminology import accept

    def go() -> None:
        spark = build_spark(_settings())
        accept(
            spark,
            institution=institution,
            vocabulary=vocabulary,
            code=code,
            concept_id=concept_id,
            decided_by=by,
        )
        typer.echo(f"accepted: {institution} {vocabulary} {code} -> {concept_id}")

    _guard(go)


empi_app = typer.Typer(
    help="Master patient index: link patient records to persons (docs/empi.md).",
    no_args_is_help=True,
)
app.add_typer(empi_app, name="empi")


@empi_app.command("run")
def empi_run(
    full: Annotated[bool, typer.Option("--full", help="Relink every silver.patient row.")] = False,
    truth: Annotated[
        Path | None,
        typer.Option("--truth", help="Score the index against a synthetic hospital's truth."),
    ] = None,
) -> None:
    """Link new and changed silver.patient records into persons (stable ids)."""
    from jobs import empi as empi_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        spark = build_spark(cfg)
        typer.echo(empi_job.describe(empi_job.run(spark, cfg, full=full)))
        if truth is not None:
            typer.echo(empi_job.describe_scores(empi_job.score_against_truth(spark, truth)))

    _guard(go)


@empi_app.command("review")
def empi_review(
    limit: Annotated[int, typer.Option(help="Pairs to show at most.")] = 50,
) -> None:
    """List pending review pairs (ids, persons and probability; no patient data)."""
    from lakehouse.empi.review import pending
    from lakehouse.spark import build_spark

    def go() -> None:
        spark = build_spark(_settings())
        for r in pending(spark, limit=limit):
            typer.echo(
                f"{r['pair_id']} {r['person_id_l']} {r['person_id_r']} "
                f"p={float(str(r['match_probability'])):.3f}"
            )

    _guard(go)


@empi_app.command("decide")
def empi_decide(
    pair_id: Annotated[str, typer.Argument(help="Pair id from `lakehouse empi review`.")],
    decision: Annotated[str, typer.Argument(help="same or different.")],
    by: Annotated[str, typer.Option("--by", help="Reviewer's user name.")],
) -> None:
    """Record a decision; the next `lakehouse empi run` applies it."""
    from lakehouse.empi.review import decide
    from lakehouse.spark import build_spark

    def go() -> None:
        decide(build_spark(_settings()), pair_id, decision, by)
        typer.echo(f"decided: {pair_id} {decision} (applied by the next empi run)")

    _guard(go)


@empi_app.command("train")
def empi_train(
    out: Annotated[Path, typer.Option("--out", help="Where to write the model JSON.")],
) -> None:
    """Estimate the linkage model (Splink: u by sampling, m by EM) from silver.patient."""
    from jobs import empi as empi_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        typer.echo(empi_job.train(build_spark(cfg), cfg, out))

    _guard(go)


features_app = typer.Typer(
    help="ML features at index times and the MEDS export (docs/features.md).",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")


@features_app.command("build")
def features_build(
    gold_version: Annotated[
        list[str] | None,
        typer.Option(
            "--gold-version",
            help="TABLE=VERSION: read this gold table at an older Delta version (repeatable).",
        ),
    ] = None,
    no_meds: Annotated[bool, typer.Option("--no-meds", help="Skip features.meds_events.")] = False,
) -> None:
    """Recompute the feature tables from the gold tables' current (or given) versions."""
    from jobs import features as features_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        versions = features_job.parse_versions(gold_version or [])
        report = features_job.run(build_spark(cfg), cfg, gold_versions=versions, meds=not no_meds)
        typer.echo(report.describe())

    _guard(go)


@features_app.command("export-meds")
def features_export_meds(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the MEDS dataset to.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Delta version of features.meds_events.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a previous export in --out.")
    ] = False,
) -> None:
    """Write features.meds_events as MEDS Parquet shards with codes, splits and dataset.json."""
    from jobs import features as features_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        result = features_job.export(
            build_spark(cfg), cfg, out, version=version, overwrite=overwrite
        )
        typer.echo(result.describe())

    _guard(go)


# --- tabular baseline: training and batch scoring (models/tabular, docs/models.md) ---

_TASK_HELP = "tabular (the baseline, models.name) or multimodal (models.multimodal_name)."


def _task(task: str) -> bool:
    """True for ``--task multimodal``, False for tabular; LH-CFG-001 for anything else."""
    from lakehouse.errors import ErrorCode, error

    if task not in ("tabular", "multimodal"):
        raise error(ErrorCode.CONFIG_INVALID, setting="--task", reason="tabular or multimodal")
    return task == "multimodal"


@app.command()
def notebooks(
    notebook: Annotated[
        list[str] | None,
        typer.Option("--notebook", help="Run only this notebook (file name or stem; repeatable)."),
    ] = None,
) -> None:
    """Run the notebooks in notebooks/ top to bottom against the lakehouse; the executed
    copies, with their tables and figures, go to <data_dir>/notebooks/."""
    from jobs import notebooks as notebooks_job
    from lakehouse.runs import job_run
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        spark = build_spark(cfg)
        with job_run(spark, cfg, "notebooks") as rec:
            report = notebooks_job.run(spark, cfg, names=notebook)
            for key, value in report.counts().items():
                rec.count(key, value)
        typer.echo(notebooks_job.describe(report))

    _guard(go)


@app.command()
def train(
    data_version: Annotated[
        list[str] | None,
        typer.Option(
            "--data-version",
            help="TABLE=VERSION: read this input at an older Delta version (repeatable).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Registered model name (default: the task's setting)."),
    ] = None,
    reproduce_run: Annotated[
        str | None,
        typer.Option("--reproduce", help="Refit this MLflow run on its logged data versions."),
    ] = None,
    task: Annotated[str, typer.Option("--task", help=_TASK_HELP)] = "tabular",
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="multimodal: train only text, image, tabular or joint."),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="multimodal: cpu (default) or cuda.")
    ] = None,
) -> None:
    """Train the tabular baseline (or, --task multimodal, the text, image, tabular and joint
    models), log them in MLflow and register the best as champion."""
    from lakehouse.runs import job_run
    from lakehouse.spark import build_spark
    from models.tabular.train import parse_versions, reproduce, train

    def go() -> None:
        cfg = _settings()
        multimodal = _task(task)
        fit: Callable[..., Any] = train
        refit: Callable[..., Any] = reproduce
        if multimodal:
            from models.multimodal.train import multimodal_trainer

            fit, refit = multimodal_trainer(model, device)
        spark = build_spark(cfg)
        if reproduce_run:
            again = refit(spark, cfg, reproduce_run)
            typer.echo(again.describe())
            if not again.equal:
                raise typer.Exit(1)
            return
        versions = parse_versions(data_version or [])
        with job_run(spark, cfg, "train_multimodal" if multimodal else "train") as rec:
            report = fit(spark, cfg, versions=versions, name=name)
            for split, rows in report.rows.items():
                rec.count(f"{split}_rows", rows)
        typer.echo(report.describe())

    _guard(go)


@app.command()
def score(
    name: Annotated[
        str | None, typer.Option("--name", help="Registered model name (models.name).")
    ] = None,
    task: Annotated[str, typer.Option("--task", help=_TASK_HELP)] = "tabular",
) -> None:
    """Score the champion on every patient whose features changed into gold.model_predictions."""
    from lakehouse.spark import build_spark
    from models.tabular.score import run

    def go() -> None:
        cfg = _settings()
        if _task(task):
            from models.multimodal.score import run as run_multimodal

            typer.echo(run_multimodal(build_spark(cfg), cfg, name=name).describe())
            return
        typer.echo(run(build_spark(cfg), cfg, name=name).describe())

    _guard(go)


# --- multimodal models: the demo stage (models/multimodal; `train`/`score --task`) ---
def _with_train_stage(pipeline: list[Any]) -> list[Any]:
    """The demo's ``train`` stage after ``features``: the tabular baseline and the four
    multimodal models on the project's MLflow server (started for the stage unless one
    answers), the multimodal champion scored, the comparison table printed."""
    from jobs import demo as demo_job

    def train_stage(spark: Any, cfg: Settings) -> dict[str, int]:
        import contextlib

        from lakehouse.tracking import TrackingServer, ping, tracking_uri
        from models.multimodal.score import run as score_multimodal_run
        from models.multimodal.train import train as train_multimodal_models
        from models.tabular.train import train as train_tabular

        with contextlib.ExitStack() as stack:
            if not ping(tracking_uri(cfg)) and cfg.mlflow.tracking_uri is None:
                server = stack.enter_context(TrackingServer(cfg))
                typer.echo(f"  mlflow server started for the stage on {server.url}")
            tabular = train_tabular(spark, cfg)
            typer.echo(tabular.describe())
            report = train_multimodal_models(spark, cfg)
            typer.echo(report.describe())
            scored = score_multimodal_run(spark, cfg)
            typer.echo(scored.describe())
        return {
            "tabular_version": tabular.champion_version,
            "multimodal_version": report.champion_version,
            **{f"{s}_rows": n for s, n in report.rows.items()},
            "scored": scored.scored,
        }

    stage = demo_job.Stage(
        "train",
        "tabular baseline and text/image/tabular/joint models in MLflow, champion scored",
        train_stage,
    )
    return _after(pipeline, "features", stage)


def _after(pipeline: list[Any], name: str, stage: Any) -> list[Any]:
    """``pipeline`` with ``stage`` inserted right after the stage called ``name``."""
    at = [s.name for s in pipeline].index(name) + 1
    return [*pipeline[:at], stage, *pipeline[at:]]


#: Persons the demo's assistant stage asks about (``lakehouse eval assistant`` asks all).
DEMO_EVAL_PERSONS = 40


def _with_assistant_stage(pipeline: list[Any]) -> list[Any]:
    """The demo's ``assistant`` stage after ``deid``: the clinical assistant in grounded
    mode asked the evaluation's questions about a sample of the synthetic hospital
    (``lakehouse eval assistant --limit 40``), the figures printed, the report written and,
    when the MLflow server answers, logged."""
    from jobs import demo as demo_job

    def assistant_stage(spark: Any, cfg: Settings) -> dict[str, int]:
        from lakehouse.tracking import ping, tracking_uri
        from serving.assistant.evaluate import log_to_mlflow, run_eval, write_report
        from serving.assistant.tools import ToolTables

        report = run_eval(spark, cfg, limit=DEMO_EVAL_PERSONS)
        path = cfg.data_dir / "eval" / "assistant-demo.json"
        write_report(report, path)
        metrics = report.metrics()
        for name in ("answer_accuracy", "abstention_accuracy", "citation_precision", "leakage"):
            value = metrics[name]
            typer.echo(
                f"  {name}: {value:.3f}" if isinstance(value, float) else f"  {name}: {value}"
            )
        typer.echo(f"  report: {path}")
        if ping(tracking_uri(cfg)):
            tables = [t.name for t in ToolTables().all()]
            typer.echo(f"  mlflow run: {log_to_mlflow(spark, cfg, report, path, tables)}")
        answerable = [r for r in report.cases if r.case.category == "answerable"]
        return {
            "questions": len(report.cases),
            "answerable_correct": sum(r.correct for r in answerable),
            "answerable": len(answerable),
            "citations": int(metrics["citations"] or 0),
            "leakage": int(metrics["leakage"] or 0),
        }

    stage = demo_job.Stage(
        "assistant",
        "clinical assistant (grounded mode) asked the evaluation's questions, with citations",
        assistant_stage,
    )
    return _after(pipeline, "deid", stage)


# --- LoRA fine-tuning of the local LLM (models/llm, docs/llm-tuning.md) ---
@app.command("lora-data")
def lora_data(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder of the JSONL part files (default <data_dir>/llm/instructions)."
        ),
    ] = None,
) -> None:
    """Write LoRA instruction data (JSONL) from the de-identified views."""
    from lakehouse.runs import job_run
    from lakehouse.spark import build_spark
    from models.llm.instructions import write_instructions

    def go() -> None:
        cfg = _settings()
        spark = build_spark(cfg)
        with job_run(spark, cfg, "lora-data") as rec:
            report = write_instructions(spark, out or cfg.data_dir / "llm" / "instructions")
            for task, n in report.lines.items():
                rec.count(task, n)
        typer.echo(report.describe())

    _guard(go)


@app.command("lora-train")
def lora_train(
    base_model: Annotated[
        Path, typer.Option("--base-model", help="Local Hugging Face model directory.")
    ],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="JSONL file or folder (default <data_dir>/llm/instructions)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Adapter folder (default <data_dir>/llm/adapters/<time>)."),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps.")] = 100,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 4,
    grad_accum: Annotated[int, typer.Option("--grad-accum")] = 1,
    lr: Annotated[float, typer.Option("--lr")] = 2e-4,
    max_length: Annotated[int, typer.Option("--max-length")] = 1024,
    rank: Annotated[int, typer.Option("--rank")] = 8,
    alpha: Annotated[int, typer.Option("--alpha")] = 16,
    dropout: Annotated[float, typer.Option("--dropout")] = 0.05,
    target_modules: Annotated[
        str, typer.Option("--target-modules", help="Comma-separated; default by model type.")
    ] = "",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cuda or cpu.")] = "auto",
    mlflow: Annotated[
        bool | None,
        typer.Option("--mlflow/--no-mlflow", help="Log to MLflow (default: when it answers)."),
    ] = None,
) -> None:
    """LoRA-tune a local causal LM; the run is logged to MLflow when a server answers."""
    from datetime import UTC, datetime

    from models.llm.lora import TrainConfig
    from models.llm.tracking import train_logged

    def go() -> None:
        cfg = _settings()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        train_cfg = TrainConfig(
            base_model=base_model,
            data=data or cfg.data_dir / "llm" / "instructions",
            out=out or cfg.data_dir / "llm" / "adapters" / stamp,
            steps=steps,
            batch_size=batch_size,
            grad_accum=grad_accum,
            lr=lr,
            max_length=max_length,
            rank=rank,
            alpha=alpha,
            dropout=dropout,
            target_modules=tuple(t for t in target_modules.split(",") if t),
            seed=seed,
            device=device,
        )
        typer.echo(train_logged(cfg, train_cfg, mlflow=mlflow).describe())

    _guard(go)


dq_app = typer.Typer(
    help="Data quality: rules (Kahn framework) and OMOP DQD checks (docs/quality.md).",
    no_args_is_help=True,
)
app.add_typer(dq_app, name="dq")


@dq_app.command("run")
def dq_run(
    layer: Annotated[
        str | None, typer.Option("--layer", help="Only the rules of bronze, silver or gold.")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option("--rules", help="YAML rule file or folder (default: shipped).")
    ] = None,
    no_dqd: Annotated[bool, typer.Option("--no-dqd", help="Skip the OMOP DQD checks.")] = False,
) -> None:
    """Run the rules (and the DQD checks over gold) into dq.results; print a summary."""
    from jobs import quality as quality_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        try:
            report = quality_job.run(
                build_spark(cfg), cfg, layer=layer, rules=rules, dqd=False if no_dqd else None
            )
        except LakehouseError as exc:
            if isinstance(getattr(exc, "report", None), quality_job.QualityRunReport):
                typer.echo(exc.report.describe())  # type: ignore[attr-defined]
            raise
        typer.echo(report.describe())

    _guard(go)


@dq_app.command("trend")
def dq_trend(
    rule: Annotated[str, typer.Argument(help="Rule id, e.g. SLV-ENC-002.")],
) -> None:
    """Percent failing of one rule run after run, with the table version each run read."""
    from lakehouse.quality import trend
    from lakehouse.spark import build_spark

    def go() -> None:
        for r in trend(build_spark(_settings()), rule_id=rule).collect():
            pct = "-" if r["percent_failing"] is None else f"{r['percent_failing']:.3f}%"
            typer.echo(
                f"{r['executed_at']} {r['run_id']} v{r['table_version']} "
                f"{r['rows_failing']}/{r['rows_checked']} {pct} {r['status']}"
            )

    _guard(go)


eval_app = typer.Typer(
    help="Evaluations against the synthetic hospital's truth.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")


@eval_app.command("assistant")
def eval_assistant(
    truth: Annotated[
        Path | None, typer.Option(help="Truth folder. Default: <data_dir>/synthetic/truth.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Ask about this many sampled persons (default: all).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 7,
    out: Annotated[
        Path | None,
        typer.Option(help="Report JSON. Default: <data_dir>/eval/assistant-<time>.json."),
    ] = None,
    mlflow: Annotated[
        bool | None,
        typer.Option(
            "--mlflow/--no-mlflow",
            help="Log the run to the MLflow server (default: when it answers).",
        ),
    ] = None,
) -> None:
    """Ask the grounded assistant the synthetic hospital's questions; print accuracy,
    abstention, citation precision and leakage (docs/assistant.md, Evaluation)."""
    from datetime import datetime

    from lakehouse.spark import build_spark
    from lakehouse.tracking import ping, tracking_uri
    from serving.assistant.evaluate import log_to_mlflow, run_eval, write_report
    from serving.assistant.tools import ToolTables

    def go() -> None:
        cfg = _settings()
        spark = build_spark(cfg)
        report = run_eval(spark, cfg, truth=truth, limit=limit, seed=seed)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        path = out or cfg.data_dir / "eval" / f"assistant-{stamp}.json"
        write_report(report, path)
        for name, value in report.metrics().items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            typer.echo(f"{name:>20}  {shown}")
        for reason, n in sorted(report.excluded.items()):
            typer.echo(f"  left out: {n} ({reason})")
        typer.echo(f"report: {path}")
        if mlflow is False or (mlflow is None and not ping(tracking_uri(cfg))):
            typer.echo("not logged to MLflow (no server answering; --mlflow requires one)")
            return
        tables = [t.name for t in ToolTables().all()]
        typer.echo(f"mlflow run: {log_to_mlflow(spark, cfg, report, path, tables)}")

    _guard(go)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Default: serve.host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: serve.port.")] = None,
) -> None:
    """Start the clinical assistant service (HTTPS; docs/assistant.md)."""
    import uvicorn

    from lakehouse.spark import build_spark
    from serving.app import create_app, tls_files

    def go() -> None:
        cfg = _settings()
        if host is not None or port is not None:
            serve_cfg = cfg.serve.model_copy(
                update={"host": host or cfg.serve.host, "port": port or cfg.serve.port}
            )
            cfg = cfg.model_copy(update={"serve": serve_cfg})
        tls = tls_files(cfg)
        app_ = create_app(build_spark(cfg), cfg)
        if cfg.console.warm_on_start:
            app_.state.console.warm()  # the first page or scrape then answers from the cache
        scheme = "https" if tls else "http"
        typer.echo(f"assistant at {scheme}://{cfg.serve.host}:{cfg.serve.port}/api/health")
        uvicorn.run(
            app_,
            host=cfg.serve.host,
            port=cfg.serve.port,
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
            log_level=cfg.log_level.lower(),
            proxy_headers=True,  # the client's address behind nginx (docs/adr/0029)
            forwarded_allow_ips=cfg.serve.forwarded_allow_ips,
        )

    _guard(go)


def _listening(cfg: Settings, section: str, host: str | None, port: int | None) -> Settings:
    """``cfg`` with the ``section`` listener's host and port taken from the options."""
    if host is None and port is None:
        return cfg
    own = getattr(cfg, section)
    own = own.model_copy(update={"host": host or own.host, "port": port or own.port})
    return cfg.model_copy(update={section: own})


def _serve_until_signal(start: Callable[[], str], close: Callable[[], None]) -> None:
    """Start a listener (``start`` returns the line that says where), serve until SIGTERM or
    Ctrl-C, then ``close``."""
    import signal
    import threading

    stop = threading.Event()
    try:
        typer.echo(start())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
    finally:
        close()
    typer.echo("stopped")


@app.command("sql-endpoint")
def sql_endpoint(
    host: Annotated[str | None, typer.Option("--host", help="Default: sql_endpoint.host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: sql_endpoint.port.")] = None,
) -> None:
    """Serve the SQL endpoint for analysts and BI tools (HiveServer2 protocol, JDBC/ODBC;
    every statement guarded and audited; docs/operations.md) until Ctrl-C or SIGTERM."""
    from lakehouse.governance.tls import ca_file
    from lakehouse.spark import build_spark
    from serving.sql_endpoint import sql_gateway

    def go() -> None:
        cfg = _listening(_settings(), "sql_endpoint", host, port)
        gateway, close = sql_gateway(build_spark(cfg), cfg)

        def start() -> str:
            gateway.start()
            url = f"jdbc:hive2://{cfg.sql_endpoint.host}:{gateway.port}/default"
            if gateway.tls is not None:
                url += f";ssl=true (TLS; clients trust {ca_file(cfg)})"
            return (
                f"SQL endpoint at {url} "
                "(user name and password, or a session token as the password)"
            )

        _serve_until_signal(start, close)

    _guard(go)


@app.command("spark-connect")
def spark_connect(
    host: Annotated[str | None, typer.Option("--host", help="Default: spark_connect.host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: spark_connect.port.")] = None,
) -> None:
    """Serve Spark Connect for notebooks (PySpark's remote client; every plan guarded and
    audited; docs/operations.md) until Ctrl-C or SIGTERM."""
    from lakehouse.governance.tls import ca_file
    from lakehouse.spark import build_spark
    from serving.spark_connect import connect_gateway, listener_tls

    def go() -> None:
        cfg = _listening(_settings(), "spark_connect", host, port)
        listener_tls(cfg)  # a refused setting fails before Spark starts
        gateway, close = connect_gateway(build_spark(cfg), cfg)

        def start() -> str:
            gateway.start()
            url = f"sc://{cfg.spark_connect.host}:{gateway.port}/"
            if gateway.tls is not None:
                url += f";use_ssl=true (TLS; clients trust {ca_file(cfg)})"
            return f"Spark Connect at {url} (token=<session token>)"

        _serve_until_signal(start, close)

    _guard(go)


kb_app = typer.Typer(
    help="Knowledge base: documents, folders and search (docs/knowledge-base.md).",
    no_args_is_help=True,
)
app.add_typer(kb_app, name="kb")


@kb_app.command("add")
def kb_add(
    file: Annotated[Path, typer.Argument(help="Markdown, text or PDF file to add.")],
    folder: Annotated[str, typer.Argument(help="Folder of the tree, e.g. sops/icu.")],
) -> None:
    """Copy a document into a user folder and index it (the folder's _access.yaml applies)."""
    from lakehouse.knowledge import knowledge_base

    def go() -> None:
        kb = knowledge_base(_settings())
        path, report = kb.add(file, folder)
        typer.echo(f"added {path}")
        typer.echo(report.describe())
        if not kb.access.governed(folder.strip("/")):
            typer.echo(
                f"warning: no _access.yaml in {folder} or above it: closed to every user "
                "until one grants access (docs/knowledge-base.md)",
                err=True,
            )

    _guard(go)


@kb_app.command("reindex")
def kb_reindex() -> None:
    """Index what changed in the tree (unchanged files are not re-read); list failures."""
    from lakehouse.knowledge import knowledge_base

    def go() -> None:
        report = knowledge_base(_settings()).sync()
        typer.echo(report.describe())
        if report.failures:
            raise typer.Exit(65)

    _guard(go)


@kb_app.command("search")
def kb_search(
    query: Annotated[str, typer.Argument(help='Words and "quoted phrases", zh/en.')],
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 10,
) -> None:
    """Search every folder (the host operator's view) and print path, score and snippet."""
    from lakehouse.knowledge import OPERATOR, knowledge_base

    def go() -> None:
        total, hits = knowledge_base(_settings()).search(OPERATOR, query, limit=limit)
        typer.echo(f"{total} document(s)")
        for hit in hits:
            typer.echo(f"{hit.score:8.3f}  {hit.path}  {hit.title}")
            typer.echo(f"          {' '.join(hit.snippet.html.split())}")

    _guard(go)


backup_app = typer.Typer(
    help="Backups of every table and the local state; `lakehouse restore` puts them back "
    "(docs/operations.md).",
    invoke_without_command=True,
)
app.add_typer(backup_app, name="backup")


@backup_app.callback()
def backup(
    ctx: typer.Context,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Copy only what changed since the last backup.")
    ] = False,
    include_secrets: Annotated[
        bool,
        typer.Option(
            "--include-secrets", help="Also copy <data_dir>/secrets (keys); see ADR 0018."
        ),
    ] = False,
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Only this table (repeatable).")
    ] = None,
) -> None:
    """Take a full (or --incremental) backup of every Delta table and the local state."""
    if ctx.invoked_subcommand is not None:
        return
    from jobs import backup as backup_job
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        report = backup_job.run(
            build_spark(cfg),
            cfg,
            tables=table or None,
            incremental=incremental,
            include_secrets=include_secrets,
        )
        typer.echo(
            f"backup {report.id} ({report.kind}): {report.tables} tables, "
            f"{report.files_copied} files copied ({report.bytes_copied} bytes), "
            f"{report.files_reused} reused, {report.seconds:.1f}s -> {report.path}"
        )
        for pruned in report.pruned:
            typer.echo(f"deleted by retention: {pruned}")

    _guard(go)


@backup_app.command("list")
def backup_list() -> None:
    """List the complete backups, oldest first: id, kind, parent, time, tables."""
    from lakehouse.backup import destination, list_manifests

    def go() -> None:
        cfg = _settings()
        for m in list_manifests(destination(cfg)):
            size = sum(f.size for t in m.tables for f in t.files if f.stored_in == m.id)
            typer.echo(
                f"{m.id}  {m.kind:<11}  {m.created_at}  {len(m.tables)} tables  "
                f"{size} bytes  parent={m.parent or '-'}"
            )

    _guard(go)


@app.command("restore")
def restore_command(
    backup_id: Annotated[
        str | None, typer.Option("--backup", help="Backup id (`lakehouse backup list`).")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Newest backup taken at or before this ISO time."),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option("--table", help="Only this table (repeatable); no local state then."),
    ] = None,
) -> None:
    """Restore every table and the local state from one backup, then verify it (stop the
    services and the MLflow server first)."""
    from lakehouse.backup import restore
    from lakehouse.runs import job_run
    from lakehouse.spark import build_spark

    def go() -> None:
        cfg = _settings()
        spark = build_spark(cfg)
        with job_run(spark, cfg, "restore") as run:
            report = restore(
                spark,
                cfg,
                backup_id=backup_id,
                to=to,
                tables=table or None,
                include_state=not table,
            )
            run.count("tables", len(report.tables))
            run.count("files", report.files)
            run.count("bytes", report.bytes)
        typer.echo(
            f"restored backup {report.backup_id}: {len(report.tables)} tables and "
            f"{', '.join(report.state) or 'no local state'}; verified in {report.seconds:.1f}s"
        )

    _guard(go)


# --- hot standby and failover (docs/operations.md, ADR 0022) ---
@app.command("standby")
def standby_command(
    once: Annotated[bool, typer.Option("--once", help="One shipping pass, then exit.")] = False,
    status: Annotated[
        bool,
        typer.Option("--status", help="Print the shipper's last status (JSON) and exit."),
    ] = False,
    metrics: Annotated[
        bool,
        typer.Option("--metrics", help="Print the status as Prometheus text and exit."),
    ] = False,
) -> None:
    """Ship every committed Delta version to standby.target, data files first, then the
    commit (no Spark; runs until stopped or a failover is requested)."""
    import signal
    import threading

    from lakehouse.standby import Shipper, read_status, render_metrics

    def go() -> None:
        cfg = _settings()
        if status or metrics:
            doc = read_status(cfg)
            if metrics:
                typer.echo(render_metrics(doc), nl=False)
            else:
                typer.echo(json.dumps(doc, indent=1) if doc else "no status yet")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):  # finish the cycle, write the status
            signal.signal(sig, lambda *_: stop.set())
        with Shipper(cfg) as shipper:
            shipper.run(stop=stop, cycles=1 if once else None)
        lag = shipper.status()["lag"]
        typer.echo(
            f"standby {shipper.state}: {len(shipper.tables)} tables, "
            f"{lag['samples']} versions shipped, lag p50 {lag['p50_s'] or 0}s "
            f"p99 {lag['p99_s'] or 0}s"
        )

    _guard(go)


@app.command("failover")
def failover_command(
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            help="Seconds to wait for the shipper to stop (default: standby.failover_wait_s).",
        ),
    ] = None,
) -> None:
    """Promote the standby: stop shipping, check every version of every standby table is
    complete, register the tables in the standby site's catalog (data_dir = standby.target)."""
    from lakehouse.spark import build_spark
    from lakehouse.standby import target_root
    from lakehouse.standby.failover import failover

    def go() -> None:
        cfg = _settings()
        root = target_root(cfg)
        site_cfg = load_settings(data_dir=root, warehouse_uri=str(root / "warehouse"))
        spark = build_spark(site_cfg)
        report = failover(spark, cfg, wait_s=wait)
        for t in report.tables:
            typer.echo(f"{t.name}: versions {t.first_version}..{t.last_version} ({t.files} files)")
        for name in report.skipped:
            typer.echo(f"{name}: dropped on the primary, not registered")
        typer.echo(
            f"promoted {root} at {report.promoted_at}: {len(report.tables)} tables, "
            f"{report.seconds:.1f}s; point the services at LAKEHOUSE_DATA_DIR={root}"
        )

    _guard(go)


@app.command("pg-replication")
def pg_replication_command(
    dsn: Annotated[
        str,
        typer.Option(
            "--dsn",
            help="libpq connection string of the server (default: the PG* environment "
            "variables); keep the password in ~/.pgpass, never here.",
        ),
    ] = "",
    metrics: Annotated[
        bool, typer.Option("--metrics", help="Print Prometheus text instead.")
    ] = False,
) -> None:
    """Streaming replication of a PostgreSQL server of the lakehouse (MLflow store,
    metastore): its standbys when it is a primary, its replay state when it is a standby.
    Exit status 1 on a primary with no standby streaming synchronously."""
    from lakehouse.standby.postgres import render, replicas, standby

    def go() -> None:
        own = standby(dsn)
        reps = None if own.in_recovery else replicas(dsn)
        if metrics:
            typer.echo(render(reps, own), nl=False)
        elif reps is None:
            since = own.since_last_replay_s
            typer.echo(
                "standby: in recovery, last replayed commit "
                + ("none yet" if since is None else f"{since:.1f}s ago")
            )
        else:
            typer.echo(f"primary: {len(reps)} standby(s)")
            for r in reps:
                typer.echo(
                    f"  {r.name}: {r.state}, {r.sync_state}, {r.bytes_behind} bytes behind, "
                    f"replay lag {r.replay_lag_s:.3f}s"
                )
        if reps is not None and not any(r.healthy for r in reps):
            raise typer.Exit(1)

    _guard(go)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lakehouse`` script; returns the exit status."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="lakehouse")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
