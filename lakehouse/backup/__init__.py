"""Backups of the lakehouse and one-step restore (docs/operations.md, docs/adr/0018).

report = take_backup(spark, cfg)                      # full; incremental=True between
restore(spark, cfg, backup_id=report.id)              # or to="2026-11-26T08:00"
"""

from lakehouse.backup.manifest import Manifest, list_manifests, read_manifest
from lakehouse.backup.restore import RestoreReport, choose_backup, restore
from lakehouse.backup.take import (
    BackupReport,
    catalog_tables,
    destination,
    prune,
    table_fingerprint,
    take_backup,
)

__all__ = [
    "BackupReport",
    "Manifest",
    "RestoreReport",
    "catalog_tables",
    "choose_backup",
    "destination",
    "list_manifests",
    "prune",
    "read_manifest",
    "restore",
    "table_fingerprint",
    "take_backup",
]
