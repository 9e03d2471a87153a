#!/usr/bin/env bash
# LoRA smoke run on a GPU server (docs/llm-tuning.md, ADR 0026).
#
# From the repository root, with python3 that has torch, transformers and peft (no Spark,
# no MLflow, no internet): builds the tiny Llama model and its tokenizer from the committed
# instruction fixture, trains a LoRA adapter for STEPS steps (bf16 on CUDA) and prints one
# JSON line with steps/s, tokens/s, peak GPU memory and the first and last loss. The
# manifest, the summary and the log go to $OUT when it is set.
#
#   infra/gpu/lora_smoke.sh                          # cuda, 200 steps
#   infra/gpu/lora_smoke.sh --device cpu --steps 3   # the same on a CPU (arguments win)
#
# LIMIT_S (default 220) bounds the training command with `timeout`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
RESULT="${OUT:-$WORK/result}"
mkdir -p "$RESULT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cp tests/fixtures/llm/instructions.jsonl "$WORK/instructions.jsonl"
"$PY" -c 'import sys, torch, transformers, peft; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")'
timeout "${LIMIT_S:-220}" "$PY" -m models.llm.lora --tiny \
  --data "$WORK/instructions.jsonl" --out "$WORK/run" \
  --steps 200 --batch-size 8 --lr 1e-3 --max-length 1024 --device cuda "$@" \
  2> "$RESULT/train.log" | tee "$RESULT/summary.json"
cp "$WORK/run/adapter/manifest.json" "$RESULT/manifest.json"
ls -l "$WORK/run/adapter"
echo "manifest: $RESULT/manifest.json"
