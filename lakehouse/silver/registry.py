"""Which transform turns which bronze table into silver, in processing order.

Order matters within a run: the HIS (patients, visits) and the encounter-bearing sources
come first, so a note or an image delivered in the same run finds its encounter's patient.
Transforms are named by dotted path and imported when a run needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame

from lakehouse.silver.base import Transform


@dataclass(frozen=True)
class SilverSource:
    """One bronze table, its transform, and (for aggregates) how to widen a batch."""

    bronze_table: str
    transform: str  # "module:function"
    #: (changed rows, whole bronze table) -> rows the transform needs; None: the changes.
    widen: str | None = None

    def load(self) -> Transform:
        transform: Transform = _load(self.transform)
        return transform

    def load_widen(self) -> Callable[[DataFrame, DataFrame], DataFrame] | None:
        return _load(self.widen) if self.widen else None


def _load(path: str):  # type: ignore[no-untyped-def]
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_HIS = "lakehouse.silver.his:"
SOURCES: tuple[SilverSource, ...] = (
    SilverSource("bronze.his_departments", _HIS + "departments"),
    SilverSource("bronze.his_staff", _HIS + "staff"),
    SilverSource("bronze.his_patients", _HIS + "patients"),
    SilverSource("bronze.his_visits", _HIS + "visits"),
    SilverSource("bronze.his_transfers", _HIS + "transfers"),
    SilverSource("bronze.his_diagnoses", _HIS + "diagnoses"),
    SilverSource("bronze.his_prescriptions", _HIS + "prescriptions"),
    SilverSource("bronze.his_orders", _HIS + "orders"),
    SilverSource("bronze.lis_hl7v2_messages", "lakehouse.silver.hl7:transform_lis"),
    SilverSource("bronze.emr_cda_documents", "lakehouse.silver.cda:transform_emr"),
    SilverSource("bronze.fhir_resources", "lakehouse.silver.fhir:transform_fhir"),
    SilverSource("bronze.csv_rows", "lakehouse.silver.csv_member:transform_csv"),
    SilverSource("bronze.notes_documents", "lakehouse.silver.notes:transform_notes"),
    SilverSource(
        "bronze.pacs_dicom_instances",
        "lakehouse.silver.dicom:transform_dicom",
        widen="lakehouse.silver.dicom:widen_to_studies",
    ),
)
