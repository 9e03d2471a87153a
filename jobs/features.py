"""Features: patient- and encounter-level ML features and MEDS events from the OMOP gold tables.

``python -m jobs.features [build] [--gold-version TABLE=VERSION ...] [--no-meds] [--no-images]`` /
``lakehouse features build``: pin the gold tables' Delta versions, recompute every feature
table from them and write each as a snapshot (MERGE on keys, stale rows deleted), then log
the build in ``features.builds``. ``python -m jobs.features export-meds --out DIR`` /
``lakehouse features export-meds --out DIR``: write features.meds_events in the MEDS folder
layout. docs/features.md.

The build also decodes the DICOM pixels of silver imaging studies not yet in
``features.image_pixels`` (``lakehouse/features/images.py``; skipped when silver has no
imaging tables, or with ``--no-images``). ``python -m jobs.features images`` runs that step
alone. docs/models.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, error
from lakehouse.features import FeatureBuildReport, FeatureTables, build_features
from lakehouse.features.images import ImagePixelsReport, build_image_pixels
from lakehouse.features.meds import MedsExport, export_meds
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.tables.silver.imaging import IMAGING_SERIES, IMAGING_STUDY


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    tables: FeatureTables | None = None,
    gold_versions: Mapping[str, int] | None = None,
    meds: bool = True,
    images: bool = True,
) -> FeatureBuildReport:
    """Build the feature tables (recorded in ``ops.job_runs``; the build id is the run id),
    then, with ``images``, the pixels of new imaging studies (:func:`image_pixels_step`)."""
    with job_run(spark, cfg, "features") as rec:
        report = build_features(
            spark, cfg, tables=tables, gold_versions=gold_versions, build_id=rec.run_id, meds=meds
        )
        for name, value in report.counts().items():
            rec.count(name, value)
        if images:
            pixels = image_pixels_step(spark, rec.run_id)
            for name, value in (pixels.counts() if pixels else {}).items():
                rec.count(name, value)
    return report


def image_pixels_step(spark: SparkSession, run_id: str) -> ImagePixelsReport | None:
    """features.image_pixels for the silver imaging studies not yet there; None when silver
    has no imaging tables."""
    if not all(spark.catalog.tableExists(s.name) for s in (IMAGING_STUDY, IMAGING_SERIES)):
        return None
    return build_image_pixels(spark, run_id=run_id)


def images_only(spark: SparkSession, cfg: Settings) -> ImagePixelsReport | None:
    """Only the pixel step, as its own ``ops.job_runs`` run (``features.images``)."""
    with job_run(spark, cfg, "features.images") as rec:
        pixels = image_pixels_step(spark, rec.run_id)
        for name, value in (pixels.counts() if pixels else {}).items():
            rec.count(name, value)
    return pixels


def export(
    spark: SparkSession,
    cfg: Settings,
    out: Path,
    *,
    tables: FeatureTables | None = None,
    version: int | None = None,
    overwrite: bool = False,
) -> MedsExport:
    """Export features.meds_events (at ``version``) to ``out`` in the MEDS layout."""
    with job_run(spark, cfg, "features.export_meds") as rec:
        result = export_meds(
            spark,
            out,
            tables=tables,
            version=version,
            shards=cfg.features.meds_shards,
            split_seed=cfg.features.split_seed,
            overwrite=overwrite,
        )
        rec.count("events", result.events)
        rec.count("subjects", result.subjects)
    return result


def parse_versions(items: Sequence[str]) -> dict[str, int]:
    """``TABLE=VERSION`` pairs (``LH-CFG-001`` for a malformed one)."""
    out: dict[str, int] = {}
    for item in items:
        name, _, version = item.partition("=")
        if not name or not version.isdigit():
            raise error(
                ErrorCode.CONFIG_INVALID,
                setting="--gold-version",
                reason="give TABLE=VERSION, e.g. gold.person=12",
            )
        out[name] = int(version)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.features [build|export-meds --out DIR]``."""
    parser = argparse.ArgumentParser(prog="jobs.features", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    b = sub.add_parser("build", help="build the feature tables (default)")
    b.add_argument("--gold-version", action="append", default=[], metavar="TABLE=VERSION")
    b.add_argument("--no-meds", action="store_true", help="skip features.meds_events")
    b.add_argument("--no-images", action="store_true", help="skip features.image_pixels")
    sub.add_parser("images", help="only decode new imaging studies into features.image_pixels")
    e = sub.add_parser("export-meds", help="write features.meds_events as a MEDS folder")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--version", type=int, default=None, help="Delta version of meds_events")
    e.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    if args.command == "export-meds":
        return run_entrypoint(
            lambda cfg: export(
                build_spark(cfg), cfg, args.out, version=args.version, overwrite=args.overwrite
            ).describe()
        )
    if args.command == "images":
        return run_entrypoint(
            lambda cfg: str(images_only(build_spark(cfg), cfg) or "no silver imaging tables")
        )
    versions = getattr(args, "gold_version", [])
    no_meds = bool(getattr(args, "no_meds", False))
    no_images = bool(getattr(args, "no_images", False))
    return run_entrypoint(
        lambda cfg: run(
            build_spark(cfg),
            cfg,
            gold_versions=parse_versions(versions),
            meds=not no_meds,
            images=not no_images,
        ).describe()
    )


if __name__ == "__main__":
    raise SystemExit(main())
