"""The truth manifest: what the synthetic hospital really contains, as Parquet.

One file per entity under ``OUT/truth/``, written incrementally: rows are buffered per
chunk of patients and appended as a row group by a :class:`pyarrow.parquet.ParquetWriter`,
so memory stays bounded whatever the population size. Later stages are tested against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.synthetic import catalog

if TYPE_CHECKING:
    from lakehouse.synthetic.model import LabResult

S, INT, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
D, T = pa.date32(), pa.timestamp("s")

SCHEMAS: dict[str, pa.Schema] = {
    "persons": pa.schema(
        [
            ("person_id", S),
            ("name", S),
            ("sex", S),
            ("birth_date", D),
            ("id_card", S),
            ("passport", S),
            ("phone", S),
            ("address", S),
            ("ethnicity", S),
        ]
    ),
    "source_ids": pa.schema(
        [
            ("person_id", S),
            ("institution_code", S),
            ("source_system", S),
            ("source_id", S),
            ("recorded_name", S),
            ("name_variant", S),
            ("recorded_id_card", S),
            ("id_variant", S),
            ("recorded_phone", S),
        ]
    ),
    "conditions": pa.schema(
        [
            ("person_id", S),
            ("condition", S),
            ("icd10", S),
            ("name", S),
            ("onset", D),
            ("chronic", B),
        ]
    ),
    "encounters": pa.schema(
        [
            ("encounter_id", S),
            ("person_id", S),
            ("institution_code", S),
            ("source_system", S),
            ("visit_no", S),
            ("kind", S),
            ("start", T),
            ("end", T),
            ("dept", S),
            ("doctor_id", S),
        ]
    ),
    "diagnoses": pa.schema(
        [
            ("dx_id", S),
            ("encounter_id", S),
            ("person_id", S),
            ("institution_code", S),
            ("condition", S),
            ("icd10", S),
            ("name", S),
            ("primary", B),
        ]
    ),
    "labs": pa.schema(
        [
            ("lab_id", S),
            ("encounter_id", S),
            ("person_id", S),
            ("institution_code", S),
            ("source_system", S),
            ("code", S),
            ("loinc", S),
            ("value", F),
            ("unit", S),
            ("flag", S),
            ("collected_at", T),
            ("reported_value", F),
            ("reported_unit", S),
            ("file", S),
            ("record_id", S),
            ("comment", S),
        ]
    ),
    "medications": pa.schema(
        [
            ("med_id", S),
            ("encounter_id", S),
            ("person_id", S),
            ("institution_code", S),
            ("drug", S),
            ("atc", S),
            ("name", S),
            ("dose", F),
            ("unit", S),
            ("route", S),
            ("freq", S),
            ("days", INT),
            ("start", T),
        ]
    ),
    "defects": pa.schema(
        [
            ("defect_id", S),
            ("source", S),
            ("institution_code", S),
            ("file", S),
            ("record_id", S),
            ("defect_code", S),
            ("detail", S),
        ]
    ),
    "documents": pa.schema(
        [
            ("doc_id", S),
            ("source", S),
            ("institution_code", S),
            ("file", S),
            ("person_id", S),
            ("encounter_id", S),
            ("doc_type", S),
            ("title", S),
            ("language", S),
        ]
    ),
    "note_annotations": pa.schema(
        [
            ("note_id", S),
            ("file", S),
            ("person_id", S),
            ("start", INT),
            ("end", INT),
            ("text", S),
            ("kind", S),
            ("label", S),
            ("assertion", S),
            ("concept", S),
        ]
    ),
    "image_labels": pa.schema(
        [
            ("study_id", S),
            ("file", S),
            ("person_id", S),
            ("encounter_id", S),
            ("institution_code", S),
            ("modality", S),
            ("finding", S),
            ("center_x", INT),
            ("center_y", INT),
            ("radius", INT),
            ("sop_instance_uid", S),
            ("emphysema", F),
        ]
    ),
    "lung_risk": pa.schema(
        [
            ("person_id", S),
            ("age_part", F),
            ("smoking", F),
            ("smoker", S),
            ("emphysema", F),
            ("noise", F),
            ("score", F),
            ("copd", B),
            ("copd_encounter_id", S),
            ("screening_studies", INT),
        ]
    ),
    "questions": pa.schema(
        [
            ("question_id", S),
            ("person_id", S),
            ("language", S),
            ("question", S),
            ("answer", S),
            ("answer_value", F),
            ("answer_unit", S),
            ("evidence_id", S),
        ]
    ),
    "files": pa.schema(
        [
            ("path", S),
            ("source", S),
            ("institution_code", S),
            ("records", INT),
            ("bytes", INT),
            ("sha256", S),
            ("duplicate_of", S),
        ]
    ),
    "local_codes": pa.schema(
        [
            ("institution_code", S),
            ("code_system", S),
            ("local_code", S),
            ("local_name", S),
            ("standard_system", S),
            ("standard_code", S),
        ]
    ),
}


class TruthWriter:
    """Buffers truth rows by entity and appends them to ``OUT/truth/<entity>.parquet``."""

    def __init__(self, truth_dir: Path) -> None:
        self.dir = truth_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SCHEMAS}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.counts: dict[str, int] = dict.fromkeys(SCHEMAS, 0)

    def add(self, entity: str, **row: Any) -> None:
        self._rows[entity].append(row)
        self.counts[entity] += 1

    def add_lab(
        self,
        lab: LabResult,
        *,
        encounter_id: str,
        person_id: Any,
        institution_code: str,
        source_system: str,
        reported_value: Any,
        reported_unit: Any,
        file: str,
        record_id: Any,
    ) -> None:
        """The truth row of one delivered lab result (the same for every source format)."""
        self.add(
            "labs",
            lab_id=lab.lab_id,
            encounter_id=encounter_id,
            person_id=person_id,
            institution_code=institution_code,
            source_system=source_system,
            code=lab.code,
            loinc=catalog.labs()[lab.code]["loinc"],
            value=lab.value,
            unit=lab.unit,
            flag=lab.flag,
            collected_at=lab.collected_at,
            reported_value=reported_value,
            reported_unit=reported_unit,
            file=file,
            record_id=record_id,
            comment=lab.comment,
        )

    def next_id(self, entity: str, prefix: str) -> str:
        """A sequential id for ``entity`` (deterministic: rows come in a fixed order)."""
        return f"{prefix}{self.counts[entity] + 1:08d}"

    def flush(self) -> None:
        """Append every buffered row as one row group per entity."""
        for name, rows in self._rows.items():
            if not rows:
                continue
            schema = SCHEMAS[name]
            table = pa.Table.from_pylist(rows, schema=schema)
            writer = self._writers.get(name)
            if writer is None:
                path = self.dir / f"{name}.parquet"
                writer = pq.ParquetWriter(path, schema, compression="zstd")
                self._writers[name] = writer
            writer.write_table(table)
            rows.clear()

    def close(self) -> None:
        """Flush, close every writer and write empty files for entities with no rows."""
        self.flush()
        for writer in self._writers.values():
            writer.close()
        for name, schema in SCHEMAS.items():
            if name not in self._writers:
                pq.write_table(schema.empty_table(), self.dir / f"{name}.parquet")
