"""Stable person ids: incremental clustering of linked records.

Nodes are existing persons (``P:<person_id>``, all their records at once) and records not
yet in the index (``R:<record_key>``); edges are the run's links (model pairs at or above
the match threshold, same institution patient id, reviewers' 'same' decisions) minus
must-not-link pairs (reviewers' 'different'). Connected components of that small graph
(label propagation in Spark) decide:

- a component without a person is a new person: ``P`` + 16 hex digits of sha256 of its
  smallest record key (deterministic: the same records found the same id in any run);
- a component with one person: the new records join it, no id changes;
- a component with several persons merges them into the one whose first record entered
  the index first (ties: smallest id); the others' ids are retired and recorded;
- a component holding both records of a must-not-link pair is not merged: each new record
  joins its most probable neighbour person (or founds its own), persons stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from lakehouse.errors import ErrorCode, error

#: Longest chain of links label propagation follows before giving up (LH-EMP-006).
ITERATION_LIMIT = 60


def new_person_id(seed: Column) -> Column:
    """``P`` + the first 16 hex digits (upper case) of sha256 of ``seed``."""
    return F.concat(F.lit("P"), F.upper(F.substring(F.sha2(seed, 256), 1, 16)))


#: A run's link graph up to this many edges is clustered on the driver (union-find over a
#: bounded collect: one Spark job instead of one per propagation step); larger graphs (a
#: first run over a whole population) by label propagation in Spark.
LOCAL_EDGE_LIMIT = 200_000


def _components_locally(edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root is the smallest node
    return [(node, find(node)) for node in parent]


def connected_components(edges: DataFrame) -> DataFrame:
    """(node, component) of every node of ``edges`` (a, b); component = smallest node."""
    both = (
        edges.select("a", "b")
        .unionByName(edges.select(F.col("b").alias("a"), F.col("a").alias("b")))
        .distinct()
        .localCheckpoint()
    )
    small = both.limit(LOCAL_EDGE_LIMIT + 1).collect()
    if len(small) <= LOCAL_EDGE_LIMIT:
        spark = edges.sparkSession
        pairs = _components_locally([(r["a"], r["b"]) for r in small])
        return spark.createDataFrame(pairs, "node string, component string")
    labels = both.select(F.col("a").alias("node")).distinct().withColumn("label", F.col("node"))
    labels = labels.localCheckpoint()
    for _ in range(ITERATION_LIMIT):
        reached = both.join(labels.withColumnRenamed("node", "a"), "a").select(
            F.col("b").alias("node"), "label"
        )
        updated = (
            labels.unionByName(reached).groupBy("node").agg(F.min("label").alias("label"))
        ).localCheckpoint()
        moved = (
            updated.join(labels.withColumnRenamed("label", "old"), "node")
            .where(F.col("label") != F.col("old"))
            .limit(1)
            .count()
        )
        labels = updated
        if moved == 0:
            return labels.withColumnRenamed("label", "component")
    raise error(ErrorCode.EMPI_CLUSTERS_NOT_CONVERGED, count=ITERATION_LIMIT)


@dataclass(frozen=True)
class Assignment:
    """What a run changes: index rows to write and history events."""

    records: DataFrame  # record_key, person_id, match_probability, link_rule
    moved: DataFrame  # record_key, person_id (records of retired persons, moved by merges)
    merges: DataFrame  # person_id (survivor), other_person_id (retired), records_moved


def assign(
    index: DataFrame,
    new_keys: DataFrame,
    edges: DataFrame,
    must_not: DataFrame,
) -> Assignment:
    """Assign persons to ``new_keys`` and merge persons joined by ``edges``.

    ``index``: record_key, person_id, first_linked_at (the current index); ``new_keys``:
    record_key of records not in it; ``edges``: record_key_l, record_key_r,
    match_probability, link_rule; ``must_not``: record_key_l, record_key_r.
    """
    nodes = index.select(
        "record_key", F.concat(F.lit("P:"), "person_id").alias("node")
    ).unionByName(new_keys.select("record_key", F.concat(F.lit("R:"), "record_key").alias("node")))
    left = nodes.withColumnRenamed("record_key", "record_key_l").withColumnRenamed("node", "a")
    right = nodes.withColumnRenamed("record_key", "record_key_r").withColumnRenamed("node", "b")
    linked = edges.join(left, "record_key_l").join(right, "record_key_r").where("a != b")
    forbidden = (
        must_not.join(left, "record_key_l")
        .join(right, "record_key_r")
        .select(F.least("a", "b").alias("fa"), F.greatest("a", "b").alias("fb"))
        .where("fa != fb")
    )
    allowed = linked.join(
        forbidden,
        (F.least("a", "b") == F.col("fa")) & (F.greatest("a", "b") == F.col("fb")),
        "left_anti",
    ).localCheckpoint()

    # Every new record is a node, linked or not (a self edge keeps it in the components).
    new_nodes = new_keys.select(F.concat(F.lit("R:"), "record_key").alias("a")).withColumn(
        "b", F.col("a")
    )
    comps = connected_components(allowed.select("a", "b").unionByName(new_nodes))
    conflicted = (
        forbidden.join(comps.withColumnRenamed("node", "fa"), "fa")
        .join(comps.withColumnRenamed("node", "fb").withColumnRenamed("component", "cb"), "fb")
        .where(F.col("component") == F.col("cb"))
        .select("component")
        .distinct()
    )
    comps = comps.join(
        conflicted.withColumn("conflict", F.lit(True)), "component", "left"
    ).withColumn("conflict", F.coalesce("conflict", F.lit(False)))

    ages = index.groupBy("person_id").agg(F.min("first_linked_at").alias("born"))
    persons = (
        comps.where(F.col("node").startswith("P:"))
        .withColumn("person_id", F.expr("substring(node, 3)"))
        .join(ages, "person_id")
    )
    oldest = Window.partitionBy("component").orderBy(F.col("born").asc_nulls_last(), "person_id")
    survivors = (
        persons.where(~F.col("conflict"))
        .withColumn("rank", F.row_number().over(oldest))
        .where("rank = 1")
        .select("component", F.col("person_id").alias("survivor"))
    )
    founders = (
        comps.where(F.col("node").startswith("R:"))
        .groupBy("component")
        .agg(F.min(F.expr("substring(node, 3)")).alias("founder"))
        .join(survivors, "component", "left_anti")
        .select("component", new_person_id(F.col("founder")).alias("survivor"))
    )
    target = survivors.unionByName(founders)

    # The strongest link of each new record (its evidence), in either direction.
    incident = allowed.select(
        F.col("record_key_l").alias("record_key"),
        F.col("b").alias("other"),
        "match_probability",
        "link_rule",
    ).unionByName(
        allowed.select(
            F.col("record_key_r").alias("record_key"),
            F.col("a").alias("other"),
            "match_probability",
            "link_rule",
        )
    )
    best = incident.groupBy("record_key").agg(
        F.max("match_probability").alias("match_probability"),
        F.max_by("link_rule", "match_probability").alias("link_rule"),
        F.max_by(
            F.when(F.col("other").startswith("P:"), F.expr("substring(other, 3)")),
            F.when(F.col("other").startswith("P:"), F.col("match_probability")).otherwise(-1.0),
        ).alias("best_person"),
    )
    fresh = (
        comps.where(F.col("node").startswith("R:"))
        .withColumn("record_key", F.expr("substring(node, 3)"))
        .join(target, "component", "left")
        .join(best, "record_key", "left")
    )
    records = fresh.select(
        "record_key",
        F.when(F.col("conflict"), F.coalesce("best_person", new_person_id(F.col("record_key"))))
        .otherwise(F.col("survivor"))
        .alias("person_id"),
        F.coalesce("match_probability", F.lit(1.0)).alias("match_probability"),
        F.coalesce("link_rule", F.lit("founder")).alias("link_rule"),
    )

    retired = (
        persons.where(~F.col("conflict"))
        .join(survivors, "component")
        .where(F.col("person_id") != F.col("survivor"))
        .select(F.col("person_id").alias("retired"), "survivor")
    )
    moved = index.join(retired, index.person_id == retired.retired).select(
        "record_key", F.col("survivor").alias("person_id")
    )
    merges = (
        index.join(retired, index.person_id == retired.retired)
        .groupBy(F.col("survivor").alias("person_id"), F.col("retired").alias("other_person_id"))
        .agg(F.count(F.lit(1)).alias("records_moved"))
    )
    return Assignment(records=records, moved=moved, merges=merges)
