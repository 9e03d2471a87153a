"""A question set with expected answers for the clinical assistant, from the truth.

For every tenth patient: the most recent value of one of their labs (Chinese and English,
citing the lab's id) and whether they were ever diagnosed with a condition (是/否). A
question is asked about one patient (``person_id``); the answer is what the truth says,
whatever dirt the sources carry.
"""

from __future__ import annotations

import random

from lakehouse.synthetic import catalog
from lakehouse.synthetic.model import LabResult, Patient
from lakehouse.synthetic.truth import TruthWriter

EVERY = 10


def add_questions(truth: TruthWriter, p: Patient, seed: int) -> None:
    """Add this patient's questions (if it is one of the sampled patients)."""
    if p.index % EVERY:
        return
    rng = random.Random(f"{seed}:questions:{p.index}")
    pid = p.person.person_id
    labs: list[LabResult] = [lab for e in p.encounters for lab in e.labs]
    if labs:
        code = rng.choice(sorted({lab.code for lab in labs}))
        latest = max((x for x in labs if x.code == code), key=lambda x: (x.collected_at, x.lab_id))
        spec = catalog.labs()[code]
        when = latest.collected_at.strftime("%Y-%m-%d")
        for lang, question, answer in (
            (
                "zh",
                f"该患者最近一次{spec['zh']}是多少？",
                f"{latest.value:g} {latest.unit}（{when}）",
            ),
            (
                "en",
                f"What was this patient's most recent {spec['en']}?",
                f"{latest.value:g} {latest.unit} ({when})",
            ),
        ):
            truth.add(
                "questions",
                question_id=truth.next_id("questions", "Q"),
                person_id=pid,
                language=lang,
                question=question,
                answer=answer,
                answer_value=latest.value,
                answer_unit=latest.unit,
                evidence_id=latest.lab_id,
            )
    key = rng.choice(sorted(catalog.conditions()))
    dx = [d for e in p.encounters for d in e.diagnoses if d.key == key]
    name = catalog.conditions()[key]["zh"]
    truth.add(
        "questions",
        question_id=truth.next_id("questions", "Q"),
        person_id=pid,
        language="zh",
        question=f"该患者是否诊断过{name}？",
        answer="是" if dx else "否",
        answer_value=None,
        answer_unit=None,
        evidence_id=dx[0].dx_id if dx else None,
    )
