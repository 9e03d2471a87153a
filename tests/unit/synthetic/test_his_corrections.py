"""Late corrections delivered later: the HIS first holds the wrong values, then the fixes."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime
from pathlib import Path

from lakehouse.synthetic import DirtRates, HospitalConfig, generate
from lakehouse.synthetic.his import apply_late_corrections, late_corrections

DIRT = dataclasses.replace(DirtRates.clean(), late_correction=1.0)


def diagnoses(db: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(db) as con:
        rows = con.execute("select diag_id, icd10, updated_at from diagnoses").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_later_mode_holds_first_values_until_the_corrections_arrive(tmp_path: Path) -> None:
    final = tmp_path / "final"
    later = tmp_path / "later"
    generate(final, HospitalConfig(patients=15, sites=1, seed=4, dirt=DIRT))
    generate(
        later, HospitalConfig(patients=15, sites=1, seed=4, dirt=DIRT, his_corrections="later")
    )
    fixes = late_corrections(later)
    assert fixes == late_corrections(final)  # the same truth either way
    assert len(fixes) >= 3
    good, first = diagnoses(final / "his/his.sqlite"), diagnoses(later / "his/his.sqlite")
    assert set(good) == set(first)
    for dx, (icd10, _) in first.items():
        assert (icd10 != good[dx][0]) == (dx in fixes), dx  # only the corrected rows differ
    manifest = json.loads((later / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["his_corrections"] == "later"
    assert "his_corrections" not in json.loads((final / "manifest.json").read_text())["parameters"]

    some = sorted(fixes)[:2]
    at = datetime(2026, 7, 1, 9, 30, 0, 250000)
    assert apply_late_corrections(later, at=at, ids=some) == 2
    assert apply_late_corrections(later, at=at, ids=some) == 0  # already corrected
    now = diagnoses(later / "his/his.sqlite")
    for dx in some:
        assert now[dx] == (fixes[dx], "2026-07-01 09:30:00.250000")
    assert apply_late_corrections(later, at=at) == len(fixes) - 2
    assert {dx: v[0] for dx, v in diagnoses(later / "his/his.sqlite").items()} == {
        dx: v[0] for dx, v in good.items()
    }
