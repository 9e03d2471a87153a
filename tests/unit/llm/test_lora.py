"""The LoRA trainer on a tiny Llama model built locally (CPU, seconds): one optimizer step,
the adapter saved and reloaded changes the logits, the prompt is masked from the loss, the
loss falls on a repeated batch, bad lines are counted, and the trainer imports no Spark."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.prompts import ASSISTANT_SYSTEM_PROMPT as ASSISTANT_SYSTEM
from models.llm import lora
from models.llm.instructions import SYSTEM

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "fixtures" / "llm" / "instructions.jsonl"


def _small_data(tmp: Path, n: int = 6) -> Path:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    path = tmp / "data.jsonl"
    path.write_text("\n".join(lines[-n:]) + "\n", encoding="utf-8")  # the short note lines
    return path


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread: the model is tiny and threads only contend on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base model (built once for the module)."""
    out = tmp_path_factory.mktemp("tiny") / "base"
    return lora.build_tiny(out, lora.sample_texts(FIXTURE), seed=0, vocab_size=512)


def _cfg(base: Path, data: Path, out: Path, **kw: Any) -> lora.TrainConfig:
    values: dict[str, Any] = {
        "steps": 1, "batch_size": 2, "max_length": 512, "device": "cpu", "lr": 1e-2,
    }  # fmt: skip
    values.update(kw)
    return lora.TrainConfig(base_model=base, data=data, out=out, **values)


def test_one_step_saves_an_adapter_that_reloads_and_changes_the_logits(
    tiny: Path, tmp_path: Path
) -> None:
    data = _small_data(tmp_path)
    out = tmp_path / "adapter"
    manifest = lora.train(_cfg(tiny, data, out))
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "adapter_config.json").is_file()
    saved = json.loads((out / lora.MANIFEST).read_text())
    assert saved == json.loads(json.dumps(manifest))
    assert saved["steps"] == 1
    assert len(saved["losses"]) == 1
    assert saved["base_config_sha256"] == lora.config_hash(tiny)
    assert saved["data_sha256"] == lora.data_hash(data)
    assert saved["seed"] == 0
    assert saved["device"] == "cpu"
    assert saved["dtype"] == "float32"
    assert 0 < saved["trainable_params"] < saved["total_params"]

    base, tokenizer = lora.load_base(tiny, "cpu", torch.float32)
    tuned, _ = lora.load_tuned(tiny, out)
    ids = tokenizer("Which lab results of this visit were abnormal?", return_tensors="pt")
    with torch.no_grad():
        before = base(**ids).logits
        after = tuned(**ids).logits
    assert before.shape == after.shape
    assert not torch.allclose(before, after)


def test_the_same_seed_gives_the_same_losses(tiny: Path, tmp_path: Path) -> None:
    data = _small_data(tmp_path)
    a = lora.train(_cfg(tiny, data, tmp_path / "a", steps=2))
    b = lora.train(_cfg(tiny, data, tmp_path / "b", steps=2))
    assert a["losses"] == b["losses"]


def test_loss_falls_on_a_repeated_batch(tiny: Path, tmp_path: Path) -> None:
    data = _small_data(tmp_path, n=2)  # one batch of two, repeated every step
    manifest = lora.train(_cfg(tiny, data, tmp_path / "a", steps=6, dropout=0.0, lr=1e-2))
    losses = manifest["losses"]
    assert losses[-1] < losses[0]


def test_the_prompt_is_masked_from_the_loss(tiny: Path) -> None:
    _, tokenizer = lora.load_base(tiny, "cpu", torch.float32)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Quote the first sentence of this note."},
        {"role": "assistant", "content": "Chest pain for 2 days. [1]"},
    ]
    ex = lora.encode(tokenizer, messages, 512)
    assert isinstance(ex, lora.Example)
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert ex.labels[:n_prompt] == [lora.IGNORE] * n_prompt
    learned = [t for t in ex.labels if t != lora.IGNORE]
    assert learned == ex.input_ids[n_prompt:]
    text = tokenizer.decode(learned)
    assert text.startswith("Chest pain")
    assert "</s>" in text
    assert lora.encode(tokenizer, messages, n_prompt) == "prompt longer than max_length"


def test_bad_lines_are_counted_not_fatal(tiny: Path, tmp_path: Path) -> None:
    good = FIXTURE.read_text(encoding="utf-8").splitlines()[-2:]
    bad = [
        "{not json",
        "[1, 2]",
        json.dumps({"messages": []}),
        json.dumps(
            {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}
        ),
        json.dumps(
            {"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "x"}]}
        ),
    ]
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join([good[0], *bad, "", good[1]]) + "\n", encoding="utf-8")
    manifest = lora.train(_cfg(tiny, data, tmp_path / "a"))
    assert manifest["data_lines"] == 7
    assert manifest["data_examples_first_pass"] == 2
    assert manifest["data_rejected"] == {
        "a message without a known role": 1,
        "no messages": 1,
        "not JSON": 1,
        "not a JSON object": 1,
        "the last message is not the assistant's": 1,
    }


def test_no_usable_example_is_a_catalogued_error(tiny: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text("{oops\n[]\n", encoding="utf-8")
    with pytest.raises(LakehouseError) as info:
        lora.train(_cfg(tiny, data, tmp_path / "a"))
    assert info.value.code is ErrorCode.LORA_NO_EXAMPLES
    assert "oops" not in str(info.value)


def test_missing_inputs_are_catalogued_errors(tiny: Path, tmp_path: Path) -> None:
    data = _small_data(tmp_path)
    with pytest.raises(LakehouseError) as info:
        lora.train(_cfg(tmp_path / "nowhere", data, tmp_path / "a"))
    assert info.value.code is ErrorCode.LORA_BASE_MODEL_MISSING
    with pytest.raises(LakehouseError) as info:
        lora.train(_cfg(tiny, tmp_path / "none.jsonl", tmp_path / "a"))
    assert info.value.code is ErrorCode.LORA_DATA_MISSING
    not_lm = tmp_path / "not_lm"
    not_lm.mkdir()
    (not_lm / "config.json").write_text('{"model_type": "no-such-type"}')
    with pytest.raises(LakehouseError) as info:
        lora.load_base(not_lm, "cpu", torch.float32)
    assert info.value.code is ErrorCode.LORA_NOT_CAUSAL_LM


def test_a_folder_of_part_files_is_read_in_order(tmp_path: Path) -> None:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    (tmp_path / "part-00001-x.txt").write_text(lines[1] + "\n")
    (tmp_path / "part-00000-x.txt").write_text(lines[0] + "\n")
    (tmp_path / ".part-00000-x.txt.crc").write_text("crc")
    (tmp_path / "_SUCCESS").write_text("")
    stats = lora.DataStats()
    got = list(lora.read_messages(tmp_path, stats))
    assert [m[-1]["content"] for m in got] == [
        json.loads(x)["messages"][-1]["content"] for x in lines[:2]
    ]
    assert stats.lines == 2
    assert not stats.rejected


def test_target_modules_by_model_type(tiny: Path) -> None:
    base, _ = lora.load_base(tiny, "cpu", torch.float32)
    cfg = lora.lora_config(base, _cfg(tiny, FIXTURE, tiny))
    assert set(cfg.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    base.config.model_type = "unknown-type"
    assert lora.lora_config(base, _cfg(tiny, FIXTURE, tiny)).target_modules == "all-linear"


def test_fixture_is_the_assistant_shape() -> None:
    """The committed fixture: the assistant's system prompt, ``[n]`` references, sources as
    ``table@version``, and a note's span is the quoted sentence."""
    assert SYSTEM == ASSISTANT_SYSTEM
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        system, user, reply = (m["content"] for m in obj["messages"])
        assert system == SYSTEM
        assert re.search(r"\[\d+\]", reply)
        assert all(re.fullmatch(r"silver\.[a-z_]+@\d+", s) for s in obj["sources"])
        for start, end in obj.get("spans", []):
            snippet = json.loads(user.split("\n", 1)[1].rsplit("\n\n", 1)[0])[0]["snippet"]
            assert reply == f"{snippet[start:end]} [1]"


def test_the_trainer_imports_no_spark_mlflow_or_pydantic() -> None:
    code = (
        "import sys, models.llm.lora as m; "
        "bad = [n for n in ('pyspark', 'mlflow', 'pydantic', 'torch') if n in sys.modules]; "
        "print(','.join(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""  # torch too is imported lazily, when training starts
