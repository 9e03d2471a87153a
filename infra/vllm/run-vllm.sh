#!/usr/bin/env bash
# The clinical assistant's language model: vLLM's OpenAI-compatible server on loopback,
# a model from a local path (no download), tool calling on (docs/assistant.md, LLM mode).
# The service then runs with LAKEHOUSE_LLM__ENDPOINT=http://127.0.0.1:${VLLM_PORT}/v1 and
# LAKEHOUSE_LLM__MODEL=${VLLM_SERVED_NAME} (and LAKEHOUSE_LLM__API_KEY_FILE when a key is set).
#
# Settings (environment; infra/vllm/vllm.env.example):
#   VLLM_MODEL_PATH      local folder of the model weights (required), e.g. /models/qwen2.5-7b-instruct
#   VLLM_SERVED_NAME     the name clients ask for (default clinical-assistant)
#   VLLM_HOST, VLLM_PORT listen address (default 127.0.0.1:8000; keep it loopback or private:
#                        prompts hold patient data)
#   VLLM_TOOL_PARSER     tool-call parser of the model's chat template (default hermes: Qwen2.5,
#                        Hermes; llama3_json for Llama 3.x, mistral for Mistral)
#   VLLM_MAX_MODEL_LEN   context length (default 8192)
#   VLLM_GPU_MEMORY      share of GPU memory vLLM may take (default 0.85)
#   VLLM_API_KEY_FILE    file holding the API key clients must send (optional; read here so
#                        the key is not on the command line)
#   VLLM_BIN             the vllm executable (default: vllm on PATH, the `gpu` extra)
#   VLLM_LORA_MODULES    LoRA adapters served beside the base model, space-separated
#                        name=path pairs (optional; `lakehouse lora-train` writes them,
#                        docs/llm-tuning.md); clients ask for the adapter by its name
#   VLLM_MAX_LORA_RANK   the largest adapter rank (default 16; the trainer's default is 8)
set -euo pipefail

: "${VLLM_MODEL_PATH:?set VLLM_MODEL_PATH to the local model folder}"
if [[ ! -d "${VLLM_MODEL_PATH}" ]]; then
  echo "run-vllm: ${VLLM_MODEL_PATH} is not a folder (models are never downloaded)" >&2
  exit 66
fi
if [[ -n "${VLLM_API_KEY_FILE:-}" ]]; then
  VLLM_API_KEY="$(<"${VLLM_API_KEY_FILE}")"
  export VLLM_API_KEY # vLLM reads the key from this variable
fi
LORA_ARGS=()
if [[ -n "${VLLM_LORA_MODULES:-}" ]]; then
  read -r -a LORA_PAIRS <<<"${VLLM_LORA_MODULES}"
  for pair in "${LORA_PAIRS[@]}"; do
    if [[ ! -f "${pair#*=}/adapter_config.json" ]]; then
      echo "run-vllm: ${pair#*=} is not an adapter folder (adapter_config.json)" >&2
      exit 66
    fi
  done
  LORA_ARGS=(--enable-lora --max-lora-rank "${VLLM_MAX_LORA_RANK:-16}" --lora-modules "${LORA_PAIRS[@]}")
fi
# No hub access: the model is a local path and nothing may be fetched.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1

# Request logging stays off (vLLM's default): prompts and completions hold patient data.
exec "${VLLM_BIN:-vllm}" serve "${VLLM_MODEL_PATH}" \
  --served-model-name "${VLLM_SERVED_NAME:-clinical-assistant}" \
  --host "${VLLM_HOST:-127.0.0.1}" \
  --port "${VLLM_PORT:-8000}" \
  --enable-auto-tool-choice \
  --tool-call-parser "${VLLM_TOOL_PARSER:-hermes}" \
  --max-model-len "${VLLM_MAX_MODEL_LEN:-8192}" \
  --gpu-memory-utilization "${VLLM_GPU_MEMORY:-0.85}" \
  --generation-config vllm \
  "${LORA_ARGS[@]}" \
  "$@"
