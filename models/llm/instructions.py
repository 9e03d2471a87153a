"""Instruction data for LoRA tuning, built by Spark from the de-identified views only.

Two tasks, each in the assistant's own shape: its system prompt, tool rows with ``[n]``
references, answers that end each sentence with those references (the agent maps ``[n]`` to
its citations ``table@version:key``, serving/assistant/agent.py):

- ``abnormal_labs``: the lab results of one visit (``deid.silver_lab_result``: person
  token, tokenized visit number, shifted times; at most :data:`MAX_LABS` per visit) and
  "which were abnormal?", answered from ``abnormal_flag``; in English and Chinese.
- ``note_first_sentence``: one de-identified note (``deid.silver_note_deid``, the NLP job's
  ``text_deid``) and "quote its first sentence", answered with the sentence and ``[1]``;
  ``spans`` holds its ``[start, end)`` in the note text (the span of a span citation).

Nothing here reads a silver table: the views drop names, phones, addresses and raw
payloads, tokenize identifiers and shift dates (docs/security.md), and the lines carry no
person or visit token, no record key and no id derived from one: only test names, values,
flags, shifted times, de-identified note text, and ``sources`` (``table@version`` of the
silver tables behind the views, for lineage). Record keys stay out because silver record
ids can embed a visit number (an HL7 filler order number often does) and the views keep
them (ADR 0026). Everything is Spark column expressions (no UDF); executors write the lines
as JSON text files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, error
from lakehouse.governance.deid.policy import load_deid_policy
from lakehouse.prompts import ASSISTANT_SYSTEM_PROMPT
from lakehouse.tables.silver.clinical import LAB_RESULT
from lakehouse.tables.silver.note_nlp import NOTE_DEID
from lakehouse.tables.versions import latest_version
from models.llm.lora import SOURCES_FILE

logger = logging.getLogger(__name__)

#: The assistant's system prompt (one text with the served assistant's).
SYSTEM = ASSISTANT_SYSTEM_PROMPT
MAX_LABS = 12
MAX_NOTE_CHARS = 1500
NORMAL_FLAGS = ("N", "")
_SENTENCE = r"^([^。.!?！？\n]{1,300}[。.!?！？]?)"


@dataclass
class InstructionReport:
    """What ``write_instructions`` wrote: lines per task, the source versions read."""

    path: Path
    lines: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        tasks = ", ".join(f"{k} {v}" for k, v in sorted(self.lines.items()))
        return f"instruction data in {self.path}: {tasks or 'no lines'}"


def lab_instructions(labs: DataFrame, *, table: str, version: int) -> DataFrame:
    """One English and one Chinese ``abnormal_labs`` line per visit of ``labs`` (rows of
    ``deid.silver_lab_result``): columns ``id``, ``task``, ``line`` (the JSON text)."""
    visit = ("patient_key", "encounter_id")
    live = labs.where(
        F.col("patient_key").isNotNull()
        & F.col("encounter_id").isNotNull()
        & F.col("abnormal_flag").isNotNull()
        & (F.coalesce(F.col("value_source"), F.lit("")) != "")
        & ~F.coalesce(F.col("is_deleted"), F.lit(False))
    )
    order = Window.partitionBy(*visit).orderBy("collected_at", *LAB_RESULT.keys)
    rows = (
        live.withColumn("rn", F.row_number().over(order))
        .where(F.col("rn") <= MAX_LABS)
        .select(
            *visit,
            F.struct(
                F.col("rn"),
                F.coalesce(
                    "test_standard_name", "test_local_name", "test_source_name", "test_source_code"
                ).alias("name"),
                F.col("value_source"),
                F.coalesce("unit_source", F.lit("")).alias("unit_source"),
                F.coalesce("reference_range_source", F.lit("")).alias("reference_range_source"),
                F.col("abnormal_flag"),
                F.date_format("collected_at", "yyyy-MM-dd HH:mm:ss").alias("collected_at"),
            ).alias("r"),
        )
        .groupBy(*visit)
        .agg(F.array_sort(F.collect_list("r")).alias("rows"))
    )
    shown = F.expr(
        "transform(rows, r -> named_struct('ref', concat('[', r.rn, ']'), 'name', r.name, "
        "'value_source', r.value_source, 'unit_source', r.unit_source, "
        "'reference_range_source', r.reference_range_source, "
        "'abnormal_flag', r.abnormal_flag, 'collected_at', r.collected_at))"
    )
    normal = ", ".join(f"'{f}'" for f in NORMAL_FLAGS)
    abnormal = F.expr(f"filter(rows, r -> NOT upper(r.abnormal_flag) IN ({normal}))")
    refs = F.expr("array_join(transform(rows, r -> concat('[', r.rn, ']')), '')")
    en_items = F.array_join(
        F.transform(
            abnormal,
            lambda r: F.concat(
                r["name"], F.lit(" "), r["value_source"], F.lit(" "), r["unit_source"],
                F.lit(" ("), r["abnormal_flag"], F.lit(", reference "),
                r["reference_range_source"], F.lit(") ["), r["rn"].cast("string"), F.lit("]"),
            ),
        ),
        "; ",
    )  # fmt: skip
    zh_items = F.array_join(
        F.transform(
            abnormal,
            lambda r: F.concat(
                r["name"], F.lit(" "), r["value_source"], F.lit(" "), r["unit_source"],
                F.lit("（"), r["abnormal_flag"], F.lit("，参考范围 "),
                r["reference_range_source"], F.lit("）["), r["rn"].cast("string"), F.lit("]"),
            ),
        ),
        "；",
    )  # fmt: skip
    any_abnormal = F.size(abnormal) > 0
    table_json = F.to_json(shown)
    en = (
        F.concat(
            F.lit("Tool `labs` returned the results of one visit:\n"),
            table_json,
            F.lit("\n\nWhich lab results of this visit were abnormal?"),
        ),
        F.when(
            any_abnormal, F.concat(F.lit("Abnormal in this visit: "), en_items, F.lit("."))
        ).otherwise(
            F.concat(F.lit("No result of this visit is flagged abnormal "), refs, F.lit("."))
        ),
    )
    zh = (
        F.concat(
            F.lit("工具 `labs` 返回了一次就诊的检验结果：\n"),
            table_json,
            F.lit("\n\n这次就诊哪些检验结果异常？"),
        ),
        F.when(
            any_abnormal, F.concat(F.lit("本次就诊异常的检验结果："), zh_items, F.lit("。"))
        ).otherwise(F.concat(F.lit("本次就诊没有标记为异常的检验结果 "), refs, F.lit("。"))),
    )
    out = [
        _line(rows, "abnormal_labs", lang, question, answer, f"{table}@{version}")
        for lang, (question, answer) in (("en", en), ("zh", zh))
    ]
    return out[0].unionByName(out[1])


def note_instructions(notes: DataFrame, *, table: str, version: int) -> DataFrame:
    """One ``note_first_sentence`` line per processed note of ``notes`` (rows of
    ``deid.silver_note_deid``), in the note's language, citing the sentence's span."""
    text = F.substring("text_deid", 1, MAX_NOTE_CHARS)
    ok = notes.where((F.col("nlp_status") == "ok") & F.col("text_deid").isNotNull())
    base = ok.select(
        F.coalesce("language", F.lit("en")).alias("language"),
        F.coalesce("note_type", F.lit("note")).alias("note_type"),
        text.alias("text"),
        F.regexp_extract(text, _SENTENCE, 1).alias("sentence"),
    ).where(F.length("sentence") > 0)
    start = F.instr(F.col("text"), F.col("sentence")) - 1
    span = F.array(F.array(start, start + F.length("sentence")))
    row = F.to_json(
        F.array(
            F.struct(
                F.lit("[1]").alias("ref"),
                F.col("note_type"),
                F.col("text").alias("snippet"),
                F.lit(True).alias("deidentified"),
            )
        )
    )
    zh = F.col("language") == "zh"
    question = F.when(
        zh,
        F.concat(
            F.lit("工具 `notes` 返回了一份去标识化的病历：\n"),
            row,
            F.lit("\n\n请引用这份病历的第一句话。"),
        ),
    ).otherwise(
        F.concat(
            F.lit("Tool `notes` returned one de-identified note:\n"),
            row,
            F.lit("\n\nQuote the first sentence of this note."),
        )
    )
    answer = F.concat(F.col("sentence"), F.lit(" [1]"))
    return _line(
        base, "note_first_sentence", F.col("language"), question, answer, f"{table}@{version}", span
    )


def _line(
    df: DataFrame,
    task: str,
    language: str | Column,
    question: Column,
    answer: Column,
    source: str,
    spans: Column | None = None,
) -> DataFrame:
    """``id``, ``task``, ``line``: the JSON of the example. The id hashes the messages
    (which hold no PHI), never a record key."""
    lang = F.lit(language) if isinstance(language, str) else language
    messages = F.array(
        F.struct(F.lit("system").alias("role"), F.lit(SYSTEM).alias("content")),
        F.struct(F.lit("user").alias("role"), question.alias("content")),
        F.struct(F.lit("assistant").alias("role"), answer.alias("content")),
    )
    ident = F.substring(
        F.sha2(F.concat_ws("\u0000", F.lit(task), lang, question, answer), 256), 1, 16
    )
    fields = [
        ident.alias("id"),
        F.lit(task).alias("task"),
        lang.alias("language"),
        messages.alias("messages"),
        F.array(F.lit(source)).alias("sources"),
    ]
    if spans is not None:
        fields.append(spans.alias("spans"))
    body = F.struct(*fields)
    return df.select(ident.alias("id"), F.lit(task).alias("task"), F.to_json(body).alias("line"))


def source_views(spark: SparkSession) -> dict[str, str]:
    """``{silver table: its de-identified view}`` for the sources; ``LH-LRA-007`` when a
    view does not exist (``lakehouse deid refresh`` creates them)."""
    policy = load_deid_policy()
    views = {spec.name: policy.view_name(spec.name) for spec in (LAB_RESULT, NOTE_DEID)}
    for view in views.values():
        if not spark.catalog.tableExists(view):
            raise error(ErrorCode.LORA_SOURCE_MISSING, table=view)
    return views


def build_instructions(
    spark: SparkSession,
    *,
    labs: DataFrame,
    notes: DataFrame | None,
    versions: dict[str, int],
) -> DataFrame:
    """Every task's lines (``id``, ``task``, ``line``) from the de-identified rows."""
    out = lab_instructions(labs, table=LAB_RESULT.name, version=versions[LAB_RESULT.name])
    if notes is not None:
        out = out.unionByName(
            note_instructions(notes, table=NOTE_DEID.name, version=versions[NOTE_DEID.name])
        )
    return out


def write_lines(lines: DataFrame, out: Path) -> dict[str, int]:
    """Write the lines as JSONL text files in ``out`` (replaced), ordered by id so a rerun
    on the same data writes the same bytes; the line count per task."""
    lines.repartition(1).sortWithinPartitions("id", "task").select("line").write.mode(
        "overwrite"
    ).option("compression", "none").text(str(out))
    counted = lines.groupBy("task").count().collect()  # one row per task: bounded
    return {r["task"]: int(r["count"]) for r in counted}


def write_instructions(spark: SparkSession, out: Path) -> InstructionReport:
    """Read the de-identified views, build the lines, write them in ``out`` with the
    versions of their silver tables in ``out/_sources.json`` (the trainer skips ``_``
    files; ``lakehouse lora-train`` logs the versions to MLflow)."""
    views = source_views(spark)
    versions = {t: latest_version(spark, t) or 0 for t in views}
    labs = spark.table(views[LAB_RESULT.name])
    notes = spark.table(views[NOTE_DEID.name])
    lines = build_instructions(spark, labs=labs, notes=notes, versions=versions)
    counts = write_lines(lines, out)
    (out / SOURCES_FILE).write_text(json.dumps(versions, sort_keys=True) + "\n")
    logger.info("lora-data: %s lines in %s", sum(counts.values()), out)
    return InstructionReport(out, counts, versions)
