"""The fast backend's C++ kernels (`grid.cpp`, `attention.cpp`), built once per source, torch version and CPU.

torch's extension builder compiles them with g++ and ninja (a dependency) into `$RAGSPEC_HOME/kernels`;
`make install` builds them ahead (`python -m ragspec.models.kernels`). Where a kernel cannot be built,
or its switch is 0 (RAGSPEC_GRID, RAGSPEC_ATTENTION), the float32 paths of torch run instead: nothing
changes but the speed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path

import torch

from ragspec.paths import home

FLAGS = ["-O3", "-march=native", "-fopenmp"]  # OpenMP: at::parallel_for uses torch's own pool
SWITCHES = {"grid": "RAGSPEC_GRID", "attention": "RAGSPEC_ATTENTION"}

log = logging.getLogger(__name__)


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return ""


@lru_cache(maxsize=None)
def load(name: str):
    """The compiled extension `<name>.cpp`, or None where it cannot be built or its switch is 0."""
    if os.environ.get(SWITCHES[name], "1") == "0":
        return None
    source = Path(__file__).with_name(f"{name}.cpp")
    parts = [source.read_text(), torch.__version__, _cpu_flags(), *FLAGS]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]
    build = home() / "kernels" / f"{name}-{key}"
    build.mkdir(parents=True, exist_ok=True)
    scripts = os.path.dirname(sys.executable)  # the environment's own ninja, if not on PATH
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    try:
        from torch.utils.cpp_extension import load as build_extension

        return build_extension(f"ragspec_{name}_{key}", [str(source)], extra_cflags=FLAGS,
                               extra_ldflags=["-fopenmp"], build_directory=str(build))
    except Exception as exc:  # no compiler, no ninja, an unsupported platform
        log.warning("%s kernel unavailable (%s); torch's float32 path runs instead", name,
                    str(exc).splitlines()[0])
        return None


if __name__ == "__main__":  # `python -m ragspec.models.kernels`: build them now (make install does)
    for name in SWITCHES:
        print(f"{name} kernel: {'ready' if load(name) is not None else 'unavailable; torch runs instead'}")
