"""GPU check of the multimodal networks (models/multimodal/nets.py, docs/models.md).

Runs where the GPU is, from the repository root, with python3 that has torch, numpy and
scikit-learn (no Spark, no MLflow): trains the text, image, tabular and joint networks on a
synthetic set with planted signal in each modality (tests/unit/models/fake_multimodal.py) on
CUDA, twice each to check the runs are deterministic, and the joint one on the CPU for the
time ratio. Prints one JSON line per fit and a summary; writes them to $OUT when set.

    python3 infra/gpu/multimodal_smoke.py [--rows 20000] [--epochs 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.multimodal.nets import NetConfig, fit  # noqa: E402
from tests.unit.models.fake_multimodal import fake_set  # noqa: E402

SETS = {
    "tabular": ("tabular",),
    "text": ("text",),
    "image": ("image",),
    "joint": ("tabular", "text", "image"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--cpu-threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    import torch

    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    lines: list[dict[str, object]] = []

    def record(line: dict[str, object]) -> None:
        print(json.dumps(line), flush=True)
        lines.append(line)

    cuda = torch.cuda.is_available()
    record({"torch": torch.__version__, "cuda": cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None})  # fmt: skip
    data = fake_set(args.rows, seed=1)
    cfg = NetConfig(epochs=args.epochs, batch_size=args.batch_size)
    devices = ["cuda"] if cuda else []
    failures = []
    for name, modalities in SETS.items():
        for device in devices:
            runs = []
            for attempt in (1, 2):
                try:
                    r = fit(data, cfg, modalities=modalities, device=device)
                except Exception as exc:  # report every failure, go on with the next
                    failures.append(f"{name}/{device}: {type(exc).__name__}: {exc}"[:400])
                    record({"model": name, "device": device, "error": failures[-1]})
                    break
                runs.append(r.metrics)
                record({"model": name, "device": device, "attempt": attempt,
                        "seconds": round(r.seconds, 2),
                        "held_out_auroc": round(r.metrics.get("held_out_auroc", float("nan")), 4),
                        "best_epoch": r.metrics["best_epoch"]})  # fmt: skip
            if len(runs) == 2:
                same = runs[0] == runs[1]
                record({"model": name, "device": device, "deterministic": same})
                if not same:
                    failures.append(f"{name}/{device}: two runs differ")
    cpu_cfg = dataclasses.replace(cfg, threads=args.cpu_threads)
    r = fit(data, cpu_cfg, modalities=SETS["joint"], device="cpu")
    record({"model": "joint", "device": "cpu", "threads": args.cpu_threads,
            "seconds": round(r.seconds, 2),
            "held_out_auroc": round(r.metrics.get("held_out_auroc", float("nan")), 4)})  # fmt: skip
    record({"summary": "ok" if not failures else "failed", "failures": failures})
    if out is not None:
        (out / "multimodal_smoke.jsonl").write_text(
            "".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8"
        )
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
