"""LoRA fine-tuning of a local causal LM on chat-formatted instruction data (JSONL).

Runs where the GPU is: it imports only the standard library, torch, transformers, peft and
``lakehouse.errors`` (standard library only), never Spark, MLflow or pydantic (ADR 0026).

>>> cfg = TrainConfig(base_model=Path("models/qwen2.5-7b"), data=Path("lora.jsonl"),
...                   out=Path("adapters/run1"), steps=200)
>>> manifest = train(cfg)            # adapter_model.safetensors + manifest.json in cfg.out

Each JSONL line is ``{"messages": [{"role": ..., "content": ...}, ...], ...}`` ending in an
``assistant`` message: the model learns that reply (loss on the reply's tokens only, the
prompt is masked with -100). The file (or a folder of Spark ``part-*`` files) is streamed,
never loaded whole; lines that are not examples are counted by reason (``LH-LRA-005``) and
skipped. ``python -m models.llm.lora --tiny`` builds a tiny Llama-architecture model and a
tokenizer trained on the data first, for tests and the GPU smoke run
(``infra/gpu/lora_smoke.sh``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.errors import ErrorCode, LakehouseError, error

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: Sidecar of a ``lakehouse lora-data`` folder: ``{silver table: Delta version}`` read.
SOURCES_FILE = "_sources.json"
ROLES = ("system", "user", "assistant")
IGNORE = -100
#: LoRA target modules by ``config.model_type``; other types get peft's ``all-linear``.
TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qwen3": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gemma2": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "phi3": ("qkv_proj", "o_proj"),
    "gpt2": ("c_attn", "c_proj"),
    "gpt_neox": ("query_key_value", "dense"),
}
#: The tiny model's chat template: ``<|role|>`` line, content, ``</s>``.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TINY_SPECIALS = ("<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>")


@dataclass
class TrainConfig:
    """One training run. ``target_modules`` empty: by model type (:data:`TARGET_MODULES`)."""

    base_model: Path
    data: Path
    out: Path
    steps: int = 1
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    max_length: int = 1024
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ()
    seed: int = 0
    device: str = "auto"  # auto | cuda | cpu
    max_grad_norm: float = 1.0


@dataclass
class DataStats:
    """What reading the data found: examples used, lines rejected by reason."""

    lines: int = 0
    examples: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class Example:
    """One tokenised example: ids, and labels with the prompt masked."""

    input_ids: list[int]
    labels: list[int]


# --- data ---------------------------------------------------------------------------


def data_files(path: Path) -> list[Path]:
    """The JSONL files of ``path``: the file itself, or a folder's ``*.jsonl``/``part-*``
    files (Spark's output) in name order, never hidden or ``_`` files (``_SUCCESS``,
    ``_sources.json``, checksums); ``LH-LRA-003`` when there is none."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file()
            and not p.name.startswith((".", "_"))
            and (p.suffix in (".jsonl", ".json") or p.name.startswith("part-"))
        )
        if files:
            return files
    raise error(ErrorCode.LORA_DATA_MISSING, path=str(path))


def data_hash(path: Path) -> str:
    """sha256 over the data files' bytes, in order (streamed)."""
    h = hashlib.sha256()
    for f in data_files(path):
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def parse_line(line: str) -> list[dict[str, str]] | str:
    """The messages of one JSONL line, or the reason it is not an example."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return "not JSON"
    if not isinstance(obj, dict):
        return "not a JSON object"
    messages = obj.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return "no messages"
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return "a message without a known role"
        if not isinstance(m.get("content"), str) or not m["content"]:
            return "a message without text"
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "assistant":
        return "the last message is not the assistant's"
    return out


def read_messages(path: Path, stats: DataStats) -> Iterator[list[dict[str, str]]]:
    """Stream the examples' messages; count every line, and every rejected one by reason."""
    for f in data_files(path):
        with f.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                stats.lines += 1
                parsed = parse_line(line)
                if isinstance(parsed, str):
                    stats.rejected[parsed] += 1
                    logger.debug("%s: line %d rejected: %s", f.name, stats.lines, parsed)
                    continue
                yield parsed


def encode(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> Example | str:
    """Token ids of the chat-formatted example, labels -100 on the prompt; or why not.

    The prompt is the template over all but the last message plus the generation prompt;
    the reply is what the full conversation adds after it (the reply and the template's
    end-of-turn tokens), so the model learns to stop."""
    try:
        prompt = tokenizer.apply_chat_template(
            messages[:-1], tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception as exc:
        return f"chat template failed ({type(exc).__name__})"
    if full.startswith(prompt):
        reply = full[len(prompt) :]
    else:  # a template that rewrites earlier turns: reply text and end of sequence
        reply = messages[-1]["content"] + (tokenizer.eos_token or "")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    if not reply_ids:
        return "empty reply"
    if len(prompt_ids) >= max_length:
        return "prompt longer than max_length"
    ids = (prompt_ids + reply_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + reply_ids)[:max_length]
    return Example(ids, labels)


def examples(path: Path, tokenizer: Any, max_length: int, stats: DataStats) -> Iterator[Example]:
    """Stream tokenised examples of one pass over the data."""
    for messages in read_messages(path, stats):
        ex = encode(tokenizer, messages, max_length)
        if isinstance(ex, str):
            stats.rejected[ex] += 1
            continue
        stats.examples += 1
        yield ex


def batches(
    path: Path, tokenizer: Any, cfg: TrainConfig, stats: DataStats
) -> Iterator[list[Example]]:
    """Batches of ``cfg.batch_size`` examples, cycling over the data as long as asked
    (the first pass counts the lines; ``LH-LRA-004`` when it yields no example)."""
    epoch = 0
    while True:
        pass_stats = stats if epoch == 0 else DataStats()
        batch: list[Example] = []
        seen = 0
        for ex in examples(path, tokenizer, cfg.max_length, pass_stats):
            seen += 1
            batch.append(ex)
            if len(batch) == cfg.batch_size:
                yield batch
                batch = []
        if seen == 0:
            top = stats.rejected.most_common(1)
            raise error(
                ErrorCode.LORA_NO_EXAMPLES,
                path=str(path),
                count=stats.rejected_total,
                reason=top[0][0] if top else "no lines",
            )
        if batch:
            yield batch
        epoch += 1


def collate(batch: Sequence[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on padding)."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# --- model ----------------------------------------------------------------------------


def resolve_device(name: str) -> str:
    """``auto``: cuda when available, else cpu; ``LH-LRA-006`` for cuda without one."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise error(ErrorCode.LORA_DEVICE_UNAVAILABLE, name=name, reason="torch sees no CUDA GPU")
    if name not in ("cuda", "cpu"):
        raise error(ErrorCode.LORA_DEVICE_UNAVAILABLE, name=name, reason="use auto, cuda or cpu")
    return name


def config_hash(base: Path) -> str:
    """sha256 of the base model's config.json (names the base an adapter belongs to)."""
    return hashlib.sha256((base / "config.json").read_bytes()).hexdigest()


def load_base(base: Path, device: str, dtype: Any) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory; ``LH-LRA-001``/``-002`` when it is not
    a causal LM with a chat-capable tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not (base / "config.json").is_file():
        raise error(ErrorCode.LORA_BASE_MODEL_MISSING, path=str(base))
    try:
        AutoConfig.from_pretrained(base, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=dtype)
    except (ValueError, OSError, KeyError) as exc:
        raise error(
            ErrorCode.LORA_NOT_CAUSAL_LM, path=str(base), reason=type(exc).__name__
        ) from exc
    if not getattr(tokenizer, "chat_template", None):
        raise error(ErrorCode.LORA_NOT_CAUSAL_LM, path=str(base), reason="no chat template")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer  # type: ignore[arg-type]  # a device name is fine


def lora_config(model: Any, cfg: TrainConfig) -> Any:
    """peft LoraConfig for ``model`` (targets by model type unless ``cfg`` names them)."""
    from peft import LoraConfig, TaskType

    targets: Any = list(cfg.target_modules) or list(TARGET_MODULES.get(model.config.model_type, ()))
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets or "all-linear",
        bias="none",
    )


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


# --- training -------------------------------------------------------------------------


def train(
    cfg: TrainConfig, *, on_step: Callable[[int, float], None] | None = None
) -> dict[str, Any]:
    """Train ``cfg.steps`` optimizer steps; save the adapter and the manifest in ``cfg.out``.

    bf16 on a CUDA GPU that supports it (base weights in bf16, adapter weights in fp32,
    autocast), fp32 elsewhere. ``on_step(step, loss)`` is called after each step (MLflow
    logging from the project CLI). Returns the manifest."""
    import torch
    from peft import get_peft_model

    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float32
    base = cfg.base_model
    if not (base / "config.json").is_file():
        raise error(ErrorCode.LORA_BASE_MODEL_MISSING, path=str(base))
    digest = data_hash(cfg.data)
    model, tokenizer = load_base(base, device, dtype)
    model.config.use_cache = False
    model = get_peft_model(model, lora_config(model, cfg))
    trainable, total = model.get_nb_trainable_parameters()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    stats = DataStats()
    stream = batches(cfg.data, tokenizer, cfg, stats)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses: list[float] = []
    tokens = 0
    model.train()
    started = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        total_loss = 0.0
        for _ in range(cfg.grad_accum):
            batch = {
                k: v.to(device) for k, v in collate(next(stream), tokenizer.pad_token_id).items()
            }
            tokens += int(batch["attention_mask"].sum())
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss / cfg.grad_accum
            loss.backward()
            total_loss += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(total_loss, 6))
        if on_step is not None:
            on_step(step, total_loss)
        logger.info("lora step %d/%d loss %.4f", step, cfg.steps, total_loss)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    cfg.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(cfg.out, safe_serialization=True)
    manifest = {
        "base_model": str(base),
        "base_config_sha256": config_hash(base),
        "model_type": model.config.model_type,
        "data": str(cfg.data),
        "data_sha256": digest,
        "data_lines": stats.lines,
        "data_examples_first_pass": stats.examples,
        "data_rejected": dict(sorted(stats.rejected.items())),
        "steps": cfg.steps,
        "losses": losses,
        "seed": cfg.seed,
        "device": device,
        "dtype": "bfloat16" if bf16 else "float32",
        "trainable_params": int(trainable),
        "total_params": int(total),
        "train_seconds": round(elapsed, 3),
        "steps_per_s": round(cfg.steps / elapsed, 3) if elapsed > 0 else None,
        "tokens_per_s": round(tokens / elapsed, 1) if elapsed > 0 else None,
        "peak_gpu_memory_mb": (
            round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None
        ),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "versions": _versions(),
    }
    (cfg.out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    if stats.rejected_total:
        logger.warning(
            "lora: %d of %d data lines rejected (%s)",
            stats.rejected_total,
            stats.lines,
            ErrorCode.LORA_BAD_LINE.id,
        )
    return manifest


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def load_tuned(base: Path, adapter: Path, device: str = "cpu") -> tuple[Any, Any]:
    """(base model with the adapter applied, tokenizer), for evaluation or merging."""
    import torch
    from peft import PeftModel

    model, tokenizer = load_base(base, device, torch.float32)
    return PeftModel.from_pretrained(model, adapter), tokenizer


# --- the tiny model ---------------------------------------------------------------------


def sample_texts(path: Path, limit: int = 2000) -> list[str]:
    """Up to ``limit`` message texts of the data (the tiny tokenizer's training corpus)."""
    texts: list[str] = []
    for messages in read_messages(path, DataStats()):
        texts.extend(m["content"] for m in messages)
        if len(texts) >= limit:
            break
    return texts[:limit]


def build_tiny(out: Path, texts: Sequence[str], *, seed: int = 0, vocab_size: int = 1024) -> Path:
    """A tiny Llama-architecture causal LM (~0.3 M parameters, random weights) and a
    byte-level BPE tokenizer trained on ``texts``, with a chat template, saved in ``out``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=TINY_SPECIALS[0]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        list(texts) or [""],
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(TINY_SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    unk, bos, eos, pad = TINY_SPECIALS[:4]
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe,
        unk_token=unk,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=list(TINY_SPECIALS[4:]),
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=96,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


# --- command line -------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m models.llm.lora",
        description="LoRA fine-tuning of a local causal LM on chat-formatted JSONL.",
    )
    base = p.add_mutually_exclusive_group(required=True)
    base.add_argument("--base-model", type=Path, help="local Hugging Face model directory")
    base.add_argument(
        "--tiny",
        action="store_true",
        help="build a tiny Llama model + tokenizer (trained on the data) in OUT/base first",
    )
    p.add_argument("--data", type=Path, required=True, help="JSONL file or folder of part files")
    p.add_argument("--out", type=Path, required=True, help="adapter + manifest folder")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--target-modules", default="", help="comma-separated; default by type")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    out: Path = args.out
    base = out / "base" if args.tiny else args.base_model
    return TrainConfig(
        base_model=base,
        data=args.data,
        out=out / "adapter" if args.tiny else out,
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        max_length=args.max_length,
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        target_modules=tuple(t for t in args.target_modules.split(",") if t),
        seed=args.seed,
        device=args.device,
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    cfg = config_from_args(args)
    try:
        if args.tiny:
            build_tiny(cfg.base_model, sample_texts(cfg.data), seed=cfg.seed)
        manifest = train(cfg)
    except LakehouseError as exc:
        print(f"error {exc}", file=sys.stderr)
        return exc.code.exit_status
    summary = {k: manifest[k] for k in ("steps", "device", "dtype", "steps_per_s", "tokens_per_s")}
    summary |= {
        "first_loss": manifest["losses"][0],
        "last_loss": manifest["losses"][-1],
        "peak_gpu_memory_mb": manifest["peak_gpu_memory_mb"],
        "trainable_params": manifest["trainable_params"],
        "data_rejected": manifest["data_rejected"],
        "adapter": str(cfg.out),
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
