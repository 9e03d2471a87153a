"""The demo's synthetic hospital: ``<data_dir>/synthetic`` (HIS, landing files, truth).

``run(spark, cfg)`` needs no Spark (the generator is plain Python) but keeps the job
signature so the demo runs it like any stage. Rerunning replaces the earlier hospital.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.entrypoint import run_entrypoint
from lakehouse.settings import Settings
from lakehouse.synthetic import DirtRates, HospitalConfig, HospitalReport, generate

logger = logging.getLogger(__name__)


def output_dir(cfg: Settings) -> Path:
    """Where the demo's synthetic hospital lives."""
    return cfg.data_dir / "synthetic"


def build(cfg: Settings) -> HospitalReport:
    """Generate the hospital the settings describe (replacing an earlier one)."""
    s = cfg.synth
    config = HospitalConfig(
        patients=s.patients,
        sites=s.sites,
        seed=s.seed,
        chunk_size=s.chunk_size,
        dirt=DirtRates.clean() if s.clean else DirtRates(),
    )
    report = generate(output_dir(cfg), config, overwrite=True)
    logger.info("synthetic hospital: %d patients, %d sites", s.patients, s.sites)
    return report


def run(spark: SparkSession | None, cfg: Settings) -> dict[str, int]:
    """The demo stage: generate and return the counts (files per source, rows, truth)."""
    del spark  # plain Python; the signature matches every other stage
    counts = build(cfg).counts
    keep = ("_files", "his_patients", "his_visits", "truth_persons", "truth_defects")
    return {k: v for k, v in counts.items() if k.endswith(keep[0]) or k in keep}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.synth``."""
    parser = argparse.ArgumentParser(prog="jobs.synth", description=__doc__)
    parser.parse_args(argv)
    return run_entrypoint(lambda cfg: build(cfg).out)


if __name__ == "__main__":
    raise SystemExit(main())
