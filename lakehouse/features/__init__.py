"""The ML feature layer over the OMOP gold tables (docs/features.md).

``build_features(spark, settings)`` computes patient-level and encounter-level features at
index times and the MEDS event table from pinned gold Delta versions;
:func:`lakehouse.features.meds.export_meds` writes the MEDS folder layout.
"""

from lakehouse.features.build import FeatureBuildReport, build_features
from lakehouse.features.tables import FeatureTables

__all__ = ["FeatureBuildReport", "FeatureTables", "build_features"]
