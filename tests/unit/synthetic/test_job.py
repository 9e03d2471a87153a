"""The demo's synth stage (jobs.synth): writes <data_dir>/synthetic, reruns replace it."""

from __future__ import annotations

from pathlib import Path

from jobs import synth as synth_job
from lakehouse.settings import Settings


def test_stage_builds_and_rebuilds_the_demo_hospital(tmp_path: Path) -> None:
    cfg = Settings(
        home=tmp_path,
        data_dir=tmp_path / "var",  # type: ignore[call-arg]
        synth={"patients": 6, "sites": 3, "seed": 2},
    )
    counts = synth_job.run(None, cfg)
    assert counts["truth_persons"] == 6
    assert counts["lis_files"] >= 1
    out = synth_job.output_dir(cfg)
    assert out == tmp_path / "var" / "synthetic"
    assert (out / "landing" / "lis" / "H0001").is_dir()
    assert synth_job.run(None, cfg) == counts  # rerun: same hospital, replaced in place
