"""Writing editions: validation, concept ids, and supersession by validity dates.

A loader turns a file into a :class:`Batch` (DataFrames of concepts, synonyms,
relationships and maps of one edition); :func:`load_edition` checks it and writes it:

1. Edition bookkeeping (``vocab.vocabulary``): the same edition from the same file again is
   a no-op; from another file ``LH-VOC-007``; an edition not valid after the newest loaded
   one ``LH-VOC-008``.
2. Concept ids: Athena ids as given, else derived (:func:`local_concept_id_col`); a derived
   id shared by two (vocabulary, code) pairs, in the batch or against the stored concepts,
   is ``LH-VOC-006``. Map targets missing from the vocabularies are ``LH-VOC-010``.
3. Supersession, per table: the latest stored version of each subject in scope is compared
   with the batch. Unchanged: nothing written. Changed: the stored version is closed
   (``valid_end_date`` = the day before ``valid_from``, ``invalid_reason`` U) and the new
   version inserted with this edition. Absent from the batch: closed with D. Nothing is
   deleted. All of it is one idempotent MERGE per table (``upsert``).
4. ``vocab.vocabulary`` rows last: an edition listed there is complete. A load killed
   before that reruns to the same tables (the MERGEs find their rows already there).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, error
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.vocab.concepts import (
    CONCEPT,
    CONCEPT_ANCESTOR,
    CONCEPT_RELATIONSHIP,
    CONCEPT_SYNONYM,
    REVIEW_QUEUE,
    SOURCE_TO_CONCEPT_MAP,
    UNIT_CONVERSION,
    VOCABULARY,
)
from lakehouse.tables.writer import ensure_table, upsert
from lakehouse.terminology.vocabularies import OPEN_END, local_concept_id_col

logger = logging.getLogger(__name__)

FIRST_DAY = date(1970, 1, 1)
REVIEW_EDITION = "review"
REVIEWER_PREFIX = "reviewer:"
VOCAB_TABLES: tuple[TableSpec, ...] = (
    VOCABULARY,
    CONCEPT,
    CONCEPT_SYNONYM,
    CONCEPT_RELATIONSHIP,
    CONCEPT_ANCESTOR,
    SOURCE_TO_CONCEPT_MAP,
    UNIT_CONVERSION,
    REVIEW_QUEUE,
)


@dataclass
class Batch:
    """One edition of one or more vocabularies, read from one file (or bundle).

    ``concepts``: concept_id (null: derive), concept_code, concept_name, concept_name_zh,
    vocabulary_id, domain_id, concept_class_id, standard_concept, valid_start_date,
    valid_end_date, invalid_reason (dates null: the edition's). ``synonyms``: vocabulary_id,
    concept_code, concept_synonym_name, language. ``relationships``: concept_id_1,
    concept_id_2, relationship_id (+ optional dates) or vocabulary/code pairs
    (vocabulary_id_1, concept_code_1, vocabulary_id_2, concept_code_2, relationship_id).
    ``maps``: source_code, source_vocabulary_id, source_code_description,
    target_vocabulary_id, target_code.
    """

    loader: str
    source_file: str
    sha256: str
    edition: str
    valid_from: date
    vocabularies: dict[str, str]
    concepts: DataFrame | None = None
    synonyms: DataFrame | None = None
    relationships: DataFrame | None = None
    maps: DataFrame | None = None
    mapped_by: str | None = None


@dataclass
class LoadReport:
    """What :func:`load_edition` did."""

    edition: str
    vocabularies: list[str]
    skipped: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.skipped:
            return f"edition {self.edition} of {', '.join(self.vocabularies)}: already loaded"
        detail = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return f"edition {self.edition} of {', '.join(self.vocabularies)}: {detail}"


_ENSURED: set[tuple[int, str]] = set()


def ensure_vocab_tables(spark: SparkSession) -> None:
    """Create or evolve the vocabulary tables, once per session and warehouse (each
    ``ensure_table`` costs several catalog calls; loads and lookups call this often)."""
    key = (id(spark), spark.conf.get("spark.sql.warehouse.dir", "") or "")
    if key in _ENSURED:
        return
    for spec in VOCAB_TABLES:
        ensure_table(spark, spec)
    _ENSURED.add(key)


def _existing_editions(
    spark: SparkSession, vocabularies: Sequence[str]
) -> list[tuple[str, str, str, date]]:
    rows = (
        spark.table(VOCABULARY.name)
        .where(F.col("vocabulary_id").isin(*vocabularies))
        .select("vocabulary_id", "edition", "source_sha256", "valid_from")
        .collect()  # bounded: editions of the batch's vocabularies
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _check_editions(spark: SparkSession, batch: Batch) -> bool:
    """True when every vocabulary of the batch already holds this edition (a no-op)."""
    existing = _existing_editions(spark, list(batch.vocabularies))
    same = {v for v, ed, sha, _ in existing if ed == batch.edition and sha == batch.sha256}
    for vocab, ed, sha, _ in existing:
        if ed == batch.edition and sha != batch.sha256:
            raise error(ErrorCode.VOCAB_EDITION_CONFLICT, version=batch.edition, name=vocab)
    if same == set(batch.vocabularies):
        return True
    for vocab, ed, _, valid_from in existing:
        if vocab in same or ed == batch.edition:
            continue
        if valid_from is not None and valid_from >= batch.valid_from:
            raise error(
                ErrorCode.VOCAB_EDITION_OUT_OF_ORDER,
                version=batch.edition,
                name=vocab,
                found=batch.valid_from.isoformat(),
                expected=valid_from.isoformat(),
            )
    return False


def _with_ids(concepts: DataFrame) -> DataFrame:
    return concepts.withColumn(
        "concept_id",
        F.coalesce(
            F.col("concept_id").cast("long"),
            local_concept_id_col(F.col("vocabulary_id"), F.col("concept_code")),
        ),
    )


def _check_collisions(
    spark: SparkSession, concepts: DataFrame, vocabularies: Sequence[str]
) -> None:
    """One concept id, two (vocabulary, code) pairs: in the batch or against the stored."""
    pairs = concepts.select("concept_id", "vocabulary_id", "concept_code")
    stored = (
        spark.table(CONCEPT.name)
        .select("concept_id", "vocabulary_id", "concept_code")
        .join(pairs.select("concept_id"), "concept_id", "left_semi")
    )
    clashes = (
        pairs.unionByName(stored)
        .distinct()
        .groupBy("concept_id")
        .count()
        .where("count > 1")
        .count()
    )
    if clashes:
        raise error(
            ErrorCode.VOCAB_CONCEPT_ID_COLLISION,
            count=clashes,
            names=", ".join(sorted(vocabularies)),
        )


def _latest(df: DataFrame, identity: Sequence[str]) -> DataFrame:
    w = Window.partitionBy(*identity).orderBy(
        F.col("valid_start_date").desc_nulls_last(), F.col("edition").desc()
    )
    return df.withColumn("__n", F.row_number().over(w)).where("__n = 1").drop("__n")


def supersede(
    spark: SparkSession,
    spec: TableSpec,
    new: DataFrame,
    *,
    identity: Sequence[str],
    compare: Sequence[str],
    scope: Column | DataFrame,
    edition: str,
    valid_from: date,
) -> dict[str, int]:
    """Write ``new`` (one version per identity, this edition) over the stored versions in
    ``scope`` (a filter, or a DataFrame of identities to semi-join), by validity dates.

    ``new`` carries every column of ``spec`` except ``edition``; its ``valid_start_date`` is
    raised to ``valid_from``. Returns counts of inserted and closed versions.
    """
    ensure_table(spark, spec)
    stored = spark.table(spec.name)
    stored = (
        stored.where(scope)
        if isinstance(scope, Column)
        else stored.join(scope, list(scope.columns), "left_semi")
    )
    current = _latest(stored, identity)
    vf = F.lit(valid_from)
    new = (
        new.withColumn("edition", F.lit(edition))
        .withColumn("valid_start_date", F.greatest(F.coalesce(F.col("valid_start_date"), vf), vf))
        .withColumn(
            "valid_end_date", F.coalesce(F.col("valid_end_date"), F.lit(OPEN_END).cast("date"))
        )
    )
    n = new.select([F.col(c).alias(f"n_{c}") for c in spec.column_names]).withColumn(
        "__in_new", F.lit(True)
    )
    c = current.select([F.col(x).alias(f"c_{x}") for x in spec.column_names]).withColumn(
        "__in_cur", F.lit(True)
    )
    on = [F.col(f"n_{k}") == F.col(f"c_{k}") for k in identity]
    cond = on[0]
    for extra in on[1:]:
        cond = cond & extra
    j = n.join(c, cond, "full_outer")
    same = F.lit(True)
    for col in compare:
        same = same & F.col(f"n_{col}").eqNullSafe(F.col(f"c_{col}"))
    in_new = F.col("__in_new").isNotNull()
    in_cur = F.col("__in_cur").isNotNull()
    unchanged = in_new & in_cur & same
    open_cur = in_cur & (F.col("c_valid_end_date") >= vf)
    j = j.withColumn("__unchanged", unchanged).persist()
    try:
        inserted = j.where(in_new & ~F.col("__unchanged")).select(
            [F.col(f"n_{x}").alias(x) for x in spec.column_names]
        )
        closed = j.where(open_cur & ~F.col("__unchanged")).select(
            [
                (
                    F.date_sub(vf, 1).alias(x)
                    if x == "valid_end_date"
                    else F.when(in_new, F.lit("U")).otherwise(F.lit("D")).alias(x)
                    if x == "invalid_reason"
                    else F.col(f"c_{x}").alias(x)
                )
                for x in spec.column_names
            ]
        )
        rows = inserted.unionByName(closed)
        n_ins = n_closed = 0
        if not rows.isEmpty():
            # New versions are inserts, closed versions updates of their stored rows.
            written = upsert(spark, spec, rows)
            n_ins, n_closed = written.inserted, written.updated
    finally:
        j.unpersist()
    return {f"{spec.table_name}_inserted": n_ins, f"{spec.table_name}_closed": n_closed}


def load_edition(spark: SparkSession, batch: Batch) -> LoadReport:
    """Check and write one edition (see the module docstring). Idempotent."""
    ensure_vocab_tables(spark)
    vocabs = sorted(batch.vocabularies)
    report = LoadReport(batch.edition, vocabs)
    if _check_editions(spark, batch):
        report.skipped = True
        logger.info("%s", report)
        return report
    in_scope = F.col("vocabulary_id").isin(*vocabs)
    concepts = _with_ids(batch.concepts) if batch.concepts is not None else None
    if concepts is not None:
        concepts = concepts.persist()
        _check_collisions(spark, concepts, vocabs)
    try:
        maps = _resolve_maps(spark, batch, concepts) if batch.maps is not None else None
        relationships = (
            _resolve_relationships(spark, batch.relationships, concepts)
            if batch.relationships is not None
            else None
        )
        if concepts is not None:
            cols = [x for x in CONCEPT.column_names if x != "edition"]
            report.counts.update(
                supersede(
                    spark,
                    CONCEPT,
                    concepts.select(*cols),
                    identity=["concept_id"],
                    compare=[x for x in cols if x not in ("concept_id", "valid_start_date")],
                    scope=in_scope,
                    edition=batch.edition,
                    valid_from=batch.valid_from,
                )
            )
        if batch.synonyms is not None and concepts is not None:
            syn = (
                batch.synonyms.join(
                    concepts.select("concept_id", "vocabulary_id", "concept_code"),
                    ["vocabulary_id", "concept_code"],
                )
                .select("concept_id", "concept_synonym_name", "language")
                .where(F.length(F.trim("concept_synonym_name")) > 0)
                .dropDuplicates()
                .withColumn("edition", F.lit(batch.edition))
            )
            report.counts["synonyms"] = upsert(spark, CONCEPT_SYNONYM, syn).inserted
        if relationships is not None:
            rcols = [x for x in CONCEPT_RELATIONSHIP.column_names if x != "edition"]
            sources = (
                spark.table(CONCEPT.name)
                .where(in_scope)
                .select(F.col("concept_id").alias("concept_id_1"))
                .distinct()
            )
            report.counts.update(
                supersede(
                    spark,
                    CONCEPT_RELATIONSHIP,
                    relationships.select(*rcols),
                    identity=["concept_id_1", "relationship_id", "concept_id_2"],
                    compare=["valid_end_date", "invalid_reason"],
                    scope=sources,
                    edition=batch.edition,
                    valid_from=batch.valid_from,
                )
            )
            if relationships.where(F.col("relationship_id") == "Is a").limit(1).count():
                report.counts["ancestors"] = rebuild_ancestors(spark, vocabs)
        if maps is not None:
            mcols = [x for x in SOURCE_TO_CONCEPT_MAP.column_names if x != "edition"]
            report.counts.update(
                supersede(
                    spark,
                    SOURCE_TO_CONCEPT_MAP,
                    maps.select(*mcols),
                    identity=["source_vocabulary_id", "source_code", "target_concept_id"],
                    compare=["source_code_description", "valid_end_date", "invalid_reason"],
                    scope=F.col("source_vocabulary_id").isin(*vocabs)
                    & ~F.coalesce(F.col("mapped_by"), F.lit("")).startswith(REVIEWER_PREFIX),
                    edition=batch.edition,
                    valid_from=batch.valid_from,
                )
            )
        _register(spark, batch, concepts, maps)
    finally:
        if concepts is not None:
            concepts.unpersist()
    logger.info("%s", report)
    return report


def _register(
    spark: SparkSession, batch: Batch, concepts: DataFrame | None, maps: DataFrame | None
) -> None:
    counts: dict[str, int] = dict.fromkeys(batch.vocabularies, 0)
    for df, col in ((concepts, "vocabulary_id"), (maps, "source_vocabulary_id")):
        if df is None:
            continue
        for r in df.groupBy(col).count().collect():  # bounded: one row per vocabulary
            if r[0] in counts:
                counts[r[0]] = max(counts[r[0]], int(r[1]))
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (vid, batch.edition, name, batch.valid_from, batch.loader, batch.source_file,
         batch.sha256, counts[vid], now)
        for vid, name in sorted(batch.vocabularies.items())
    ]  # fmt: skip
    upsert(spark, VOCABULARY, spark.createDataFrame(rows, VOCABULARY.schema))


def current_concepts(spark: SparkSession) -> DataFrame:
    """The latest version of every concept (for resolving codes at load and review time)."""
    return _latest(spark.table(CONCEPT.name), ["concept_id"])


def _resolve_maps(spark: SparkSession, batch: Batch, concepts: DataFrame | None) -> DataFrame:
    """Maps with target_concept_id resolved; ``LH-VOC-010`` when a target is unknown."""
    assert batch.maps is not None
    known = current_concepts(spark).select("concept_id", "vocabulary_id", "concept_code")
    if concepts is not None:
        known = known.unionByName(concepts.select("concept_id", "vocabulary_id", "concept_code"))
    known = known.dropDuplicates(["vocabulary_id", "concept_code"])
    resolved = batch.maps.join(
        known.select(
            F.col("concept_id").alias("target_concept_id"),
            F.col("vocabulary_id").alias("target_vocabulary_id"),
            F.col("concept_code").alias("target_code"),
        ),
        ["target_vocabulary_id", "target_code"],
        "left",
    ).persist()
    missing = resolved.where(F.col("target_concept_id").isNull()).count()
    if missing:
        resolved.unpersist()
        targets = sorted(
            {r[0] for r in batch.maps.select("target_vocabulary_id").distinct().collect()}
        )
        raise error(
            ErrorCode.VOCAB_TARGET_MISSING,
            count=missing,
            file=batch.source_file,
            names=", ".join(str(t) for t in targets),
        )
    mapped_by = batch.mapped_by or batch.loader
    return resolved.select(
        "source_code",
        "source_vocabulary_id",
        "source_code_description",
        local_concept_id_col(F.col("source_vocabulary_id"), F.col("source_code")).alias(
            "source_concept_id"
        ),
        "target_concept_id",
        "target_vocabulary_id",
        F.lit(None).cast("date").alias("valid_start_date"),
        F.lit(None).cast("date").alias("valid_end_date"),
        F.lit(None).cast("string").alias("invalid_reason"),
        F.lit(mapped_by).alias("mapped_by"),
    )


def _resolve_relationships(
    spark: SparkSession, rels: DataFrame, concepts: DataFrame | None
) -> DataFrame:
    """Relationships given by vocabulary/code pairs get concept ids; dates default."""
    if "concept_id_1" not in rels.columns:
        known = current_concepts(spark).select("concept_id", "vocabulary_id", "concept_code")
        if concepts is not None:
            known = known.unionByName(
                concepts.select("concept_id", "vocabulary_id", "concept_code")
            ).dropDuplicates(["vocabulary_id", "concept_code"])
        for side in ("1", "2"):
            rels = rels.join(
                known.select(
                    F.col("concept_id").alias(f"concept_id_{side}"),
                    F.col("vocabulary_id").alias(f"vocabulary_id_{side}"),
                    F.col("concept_code").alias(f"concept_code_{side}"),
                ),
                [f"vocabulary_id_{side}", f"concept_code_{side}"],
            )
    for col, typ in (
        ("valid_start_date", "date"),
        ("valid_end_date", "date"),
        ("invalid_reason", "string"),
    ):
        if col not in rels.columns:
            rels = rels.withColumn(col, F.lit(None).cast(typ))
    return rels.dropDuplicates(["concept_id_1", "relationship_id", "concept_id_2"])


def rebuild_ancestors(spark: SparkSession, vocabularies: Sequence[str], max_depth: int = 12) -> int:
    """Rebuild ``vocab.concept_ancestor`` for concepts of ``vocabularies`` from current,
    open Is a relationships (iterative closure, at most ``max_depth`` levels)."""
    ensure_table(spark, CONCEPT_ANCESTOR)
    members = current_concepts(spark).where(F.col("vocabulary_id").isin(*vocabularies))
    open_end = F.lit(OPEN_END).cast("date")
    edges = (
        _latest(
            spark.table(CONCEPT_RELATIONSHIP.name),
            ["concept_id_1", "relationship_id", "concept_id_2"],
        )
        .where((F.col("relationship_id") == "Is a") & (F.col("valid_end_date") >= open_end))
        .join(
            members.select(F.col("concept_id").alias("concept_id_1")), "concept_id_1", "left_semi"
        )
        .select(F.col("concept_id_1").alias("child"), F.col("concept_id_2").alias("parent"))
        .distinct()
        .persist()
    )
    pairs = members.select(
        F.col("concept_id").alias("descendant"),
        F.col("concept_id").alias("ancestor"),
        F.lit(0).alias("lvl"),
    )
    frontier = pairs
    total = pairs
    for _ in range(max_depth):
        step = (
            frontier.join(edges, frontier["ancestor"] == edges["child"])
            .select(
                "descendant", F.col("parent").alias("ancestor"), (F.col("lvl") + 1).alias("lvl")
            )
            .localCheckpoint()
        )
        if step.limit(1).count() == 0:
            break
        total = total.unionByName(step)
        frontier = step
    edges.unpersist()
    result = (
        total.groupBy("ancestor", "descendant")
        .agg(
            F.min("lvl").cast("long").alias("min_levels_of_separation"),
            F.max("lvl").cast("long").alias("max_levels_of_separation"),
        )
        .select(
            F.col("ancestor").alias("ancestor_concept_id"),
            F.col("descendant").alias("descendant_concept_id"),
            "min_levels_of_separation",
            "max_levels_of_separation",
        )
    )
    return upsert(spark, CONCEPT_ANCESTOR, result).inserted


def today() -> date:
    """The loader's default for "valid from now" decisions (UTC date)."""
    return datetime.now(UTC).date()


def day_before(d: date) -> date:
    return d - timedelta(days=1)
