"""The multimodal task and its cohort: tabular features, de-identified notes, chest images.

Task ``lung_copd_recorded`` (docs/models.md, ADR 0024): chronic obstructive pulmonary disease
(ICD-10 J44) recorded at or after the index time. In the synthetic hospital a latent
per-patient risk drives the diagnosis and each modality carries a different, noisy part of
it (docs/synthetic-hospital.md): age and sex (tabular), smoking history mentioned in notes
(text), emphysema, darker and larger lung fields, on chest images (image). No modality
states the diagnosis.

One row per row of ``features.patient_features`` (a person at an index time):

- ``label``: 1 when ``gold.condition_occurrence`` has a row of the person at or after the
  index time whose source value or concept code starts with :data:`LABEL_CODES` (the rule of
  ``models.tabular.task.LabelRule``, with these codes); else 0.
- ``split``: by person, ``models.tabular.task``'s split (``features.split_seed``).
- tabular: :data:`TABULAR_COLUMNS` (``models.tabular.task.FEATURE_COLUMNS``), doubles, null
  (NaN once collected) = unknown.
- ``note_text``: ``text_deid`` of ``silver.note_deid`` (never the raw text) of the person's
  notes recorded strictly before the index time, oldest first, joined by a blank line, the
  last :data:`TEXT_MAX_CHARS` characters; "" when none.
- ``image``: ``features.image_pixels.pixels`` (64*64 float32 little-endian, scaled to
  [0, 1]) of the person's newest study at or before the index time; null when none.

A note or study belongs to a person through ``silver.person_index`` (patient_key -> the
master patient index id) and ``gold.person`` (``person_source_value`` -> ``person_id``).
Every table is read ``VERSION AS OF`` a pinned version, returned with the frame.

Interface (used by ``models.multimodal.train``/``score``): :data:`MULTIMODAL_TASK`,
:data:`IMAGE_SIZE`, :class:`MultimodalTables`, :class:`MultimodalSet`, :func:`cohort_frame`,
:func:`collect`, :func:`load`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, error
from lakehouse.features.tables import latest_version, read_version
from lakehouse.settings import Settings
from lakehouse.tables.features.images import IMAGE_PIXELS
from lakehouse.tables.features.ml import PATIENT_FEATURES
from lakehouse.tables.gold.omop import SPECS
from lakehouse.tables.silver.note_nlp import NOTE_DEID
from lakehouse.tables.silver.person_index import PERSON_INDEX
from models.tabular.task import FEATURE_COLUMNS, LabelRule, TaskTables, cohort

MULTIMODAL_TASK = "lung_copd_recorded"
#: Condition codes of a positive label (ICD-10 J44: chronic obstructive pulmonary disease).
LABEL_CODES: tuple[str, ...] = ("ICD10:J44",)
IMAGE_SIZE = 64
IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE * 4
#: Characters of note text kept per row (the newest end).
TEXT_MAX_CHARS = 4000
TABULAR_COLUMNS: tuple[str, ...] = FEATURE_COLUMNS
ID_COLUMNS = ("index_id", "person_id", "index_time")
#: Columns of :func:`cohort_frame`, in order.
FRAME_COLUMNS: tuple[str, ...] = (
    *ID_COLUMNS,
    "split",
    "label",
    *TABULAR_COLUMNS,
    "note_text",
    "image",
)


@dataclass(frozen=True)
class MultimodalTables:
    """The tables the cohort reads (tests point them at their own tables).

    ``concept`` is optional: without it only ``condition_source_value`` is matched.
    """

    features: str = PATIENT_FEATURES.name
    conditions: str = SPECS["condition_occurrence"].name
    concept: str | None = SPECS["concept"].name
    person: str = SPECS["person"].name
    person_index: str = PERSON_INDEX.name
    notes: str = NOTE_DEID.name
    images: str = IMAGE_PIXELS.name

    def params(self) -> dict[str, str]:
        """The table names as MLflow params (read back by :meth:`from_params`)."""
        return {
            "features_table": self.features,
            "conditions_table": self.conditions,
            "concept_table": self.concept or "",
            "person_table": self.person,
            "person_index_table": self.person_index,
            "notes_table": self.notes,
            "images_table": self.images,
        }

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> MultimodalTables:
        """The tables a run logged with :meth:`params`."""
        return cls(
            features=params["features_table"],
            conditions=params["conditions_table"],
            concept=params.get("concept_table") or None,
            person=params["person_table"],
            person_index=params["person_index_table"],
            notes=params["notes_table"],
            images=params["images_table"],
        )

    def required(self) -> tuple[str, ...]:
        return (
            self.features,
            self.conditions,
            self.person,
            self.person_index,
            self.notes,
            self.images,
        )


@dataclass(frozen=True)
class MultimodalSet:
    """The cohort on the driver, sorted by ``index_id``."""

    task: str
    index_id: list[str]
    person_id: np.ndarray  # int64 [n]
    split: np.ndarray  # object [n]: train | tuning | held_out
    label: np.ndarray  # int64 [n]
    tabular: np.ndarray  # float32 [n, F], NaN = missing
    tabular_columns: tuple[str, ...]
    text: list[str]
    image: np.ndarray  # float32 [n, 64, 64], zeros when none
    has_image: np.ndarray  # bool [n]
    versions: dict[str, int]

    def __len__(self) -> int:
        return len(self.index_id)

    def subset(self, mask: np.ndarray) -> MultimodalSet:
        """The rows where ``mask`` (bool [n]) is true, in order."""
        idx = np.flatnonzero(mask)
        return MultimodalSet(
            task=self.task,
            index_id=[self.index_id[i] for i in idx],
            person_id=self.person_id[idx],
            split=self.split[idx],
            label=self.label[idx],
            tabular=self.tabular[idx],
            tabular_columns=self.tabular_columns,
            text=[self.text[i] for i in idx],
            image=self.image[idx],
            has_image=self.has_image[idx],
            versions=dict(self.versions),
        )


def pin_versions(spark: SparkSession, tables: MultimodalTables) -> dict[str, int]:
    """The newest Delta version of each input (``LH-FEA-001`` when a required one does not
    exist; a missing concept table is left out)."""
    pinned = {name: latest_version(spark, name) for name in tables.required()}
    if tables.concept and spark.catalog.tableExists(tables.concept):
        pinned[tables.concept] = latest_version(spark, tables.concept)
    return pinned


def person_of_patient_key(person_index: DataFrame, person: DataFrame) -> DataFrame:
    """(patient_key, person_id): the gold person of every live source patient record."""
    live = person_index.where(~F.coalesce(F.col("is_deleted"), F.lit(False)))
    return (
        live.select("patient_key", F.col("person_id").alias("person_source_value"))
        .join(person.select("person_id", "person_source_value"), "person_source_value")
        .select("patient_key", F.col("person_id").cast("long").alias("person_id"))
        .distinct()
    )


def note_text_before(index: DataFrame, notes: DataFrame, persons: DataFrame) -> DataFrame:
    """(index_id, note_text): de-identified notes strictly before the index time."""
    n = (
        notes.where(F.col("text_deid").isNotNull() & F.col("recorded_at").isNotNull())
        .join(persons, "patient_key")
        .select(
            F.col("person_id").alias("n_person"),
            "recorded_at",
            F.col("note_id").alias("n_note_id"),
            "text_deid",
        )
    )
    hits = index.join(
        n,
        (F.col("n_person") == F.col("person_id")) & (F.col("recorded_at") < F.col("index_time")),
    )
    ordered = F.array_sort(F.collect_list(F.struct("recorded_at", "n_note_id", "text_deid")))
    joined = F.array_join(F.transform(ordered, lambda x: x["text_deid"]), "\n\n")
    return (
        hits.groupBy("index_id")
        .agg(joined.alias("all_text"))
        .select(
            F.col("index_id").alias("t_index_id"),
            F.expr(
                f"CASE WHEN length(all_text) > {TEXT_MAX_CHARS} "
                f"THEN substring(all_text, -{TEXT_MAX_CHARS}, {TEXT_MAX_CHARS}) ELSE all_text END"
            ).alias("note_text"),
        )
    )


def image_at_or_before(index: DataFrame, images: DataFrame, persons: DataFrame) -> DataFrame:
    """(index_id, image): pixels of the person's newest study at or before the index time."""
    s = (
        images.where(F.col("study_at").isNotNull())
        .join(persons, "patient_key")
        .select(
            F.col("person_id").alias("s_person"),
            "study_at",
            "study_instance_uid",
            "pixels",
        )
    )
    hits = index.join(
        s,
        (F.col("s_person") == F.col("person_id")) & (F.col("study_at") <= F.col("index_time")),
    )
    newest = Window.partitionBy("index_id").orderBy(
        F.col("study_at").desc(), F.col("study_instance_uid").desc()
    )
    return (
        hits.withColumn("_rank", F.row_number().over(newest))
        .where("_rank = 1")
        .select(F.col("index_id").alias("i_index_id"), F.col("pixels").alias("image"))
    )


def cohort_frame(
    spark: SparkSession,
    cfg: Settings,
    *,
    tables: MultimodalTables | None = None,
    versions: Mapping[str, int] | None = None,
) -> tuple[DataFrame, dict[str, int]]:
    """The cohort as a Spark DataFrame (:data:`FRAME_COLUMNS`) and the versions read.

    ``versions`` pins tables (the rest: newest). Nothing is collected to the driver.
    """
    tables = tables or MultimodalTables()
    pinned = pin_versions(spark, tables)
    pinned.update({k: int(v) for k, v in (versions or {}).items() if k in pinned})
    task_tables = TaskTables(tables.features, tables.conditions, tables.concept)
    base = cohort(spark, task_tables, pinned, LabelRule(LABEL_CODES), cfg.features.split_seed)
    persons = person_of_patient_key(
        read_version(spark, tables.person_index, pinned[tables.person_index]),
        read_version(spark, tables.person, pinned[tables.person]),
    )
    index = base.select("index_id", "person_id", "index_time")
    notes = read_version(spark, tables.notes, pinned[tables.notes])
    images = read_version(spark, tables.images, pinned[tables.images])
    text = note_text_before(index, notes, persons)
    image = image_at_or_before(index, images, persons)
    frame = (
        base.join(text, base["index_id"] == text["t_index_id"], "left")
        .join(image, base["index_id"] == image["i_index_id"], "left")
        .select(
            *ID_COLUMNS,
            "split",
            F.col("label").cast("int").alias("label"),
            *TABULAR_COLUMNS,
            F.coalesce(F.col("note_text"), F.lit("")).alias("note_text"),
            "image",
        )
    )
    return frame, pinned


def image_array(blob: bytes | None) -> np.ndarray | None:
    """A stored image (64*64 float32 little-endian) as a float32 [64, 64] array."""
    if blob is None:
        return None
    return np.frombuffer(blob, dtype="<f4").reshape(IMAGE_SIZE, IMAGE_SIZE).astype(np.float32)


def collect(frame: DataFrame, versions: dict[str, int], *, max_rows: int) -> MultimodalSet:
    """The cohort on the driver, sorted by ``index_id``: counted first, ``LH-MDL-001`` when
    it has more than ``max_rows`` rows (about 17 KB a row with an image and 4,000 chars of
    text), then one ``toArrow()``."""
    count = frame.count()
    if count > max_rows:
        raise error(
            ErrorCode.MODEL_TRAINING_TOO_LARGE,
            table=MULTIMODAL_TASK,
            count=count,
            expected=max_rows,
        )
    table = frame.toArrow()
    order = np.argsort(
        np.asarray(table.column("index_id").to_pylist(), dtype=np.int64), kind="stable"
    )
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    n = len(order)
    images = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    has_image = np.zeros(n, dtype=bool)
    for row, i in enumerate(order):
        blob = cols["image"][i]
        if blob is None:
            continue
        if len(blob) != IMAGE_BYTES:
            raise error(
                ErrorCode.MULTIMODAL_IMAGE_INVALID,
                table=MULTIMODAL_TASK,
                count=len(blob),
                expected=IMAGE_BYTES,
            )
        images[row] = image_array(blob)
        has_image[row] = True
    tabular = np.array(
        [[np.nan if cols[c][i] is None else cols[c][i] for c in TABULAR_COLUMNS] for i in order],
        dtype=np.float32,
    ).reshape(n, len(TABULAR_COLUMNS))
    return MultimodalSet(
        task=MULTIMODAL_TASK,
        index_id=[str(cols["index_id"][i]) for i in order],
        person_id=np.array([cols["person_id"][i] for i in order], dtype=np.int64),
        split=np.array([cols["split"][i] for i in order], dtype=object),
        label=np.array([cols["label"][i] for i in order], dtype=np.int64),
        tabular=tabular,
        tabular_columns=TABULAR_COLUMNS,
        text=[cols["note_text"][i] or "" for i in order],
        image=images,
        has_image=has_image,
        versions=dict(versions),
    )


def load(
    spark: SparkSession,
    cfg: Settings,
    *,
    tables: MultimodalTables | None = None,
    versions: Mapping[str, int] | None = None,
) -> MultimodalSet:
    """:func:`cohort_frame` collected with ``models.max_training_rows``."""
    frame, pinned = cohort_frame(spark, cfg, tables=tables, versions=versions)
    return collect(frame, pinned, max_rows=cfg.models.max_training_rows)
