"""Where base models may be read from and where a run's outputs go.

A base model path comes from an admin's form or API call and is then opened by the GPU worker,
so it is checked on the server: it must resolve (symlinks followed) to a folder inside the
allowlisted models directory, holding a config.json that also resolves inside it. Nothing
outside FINETUNE_MODELS_DIR is ever read as a model.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from finetune.errors import InvalidRun


def models_dir() -> Path:
    """FINETUNE_MODELS_DIR (a setting, else the environment), by default DATA_DIR/models."""
    configured = getattr(settings, "FINETUNE_MODELS_DIR", None) or os.environ.get(
        "FINETUNE_MODELS_DIR"
    )
    return Path(configured or Path(settings.DATA_DIR) / "models").resolve()


def runs_dir() -> Path:
    return Path(settings.DATA_DIR).resolve() / "finetune"


def run_dir(run_id: int) -> Path:
    """DATA_DIR/finetune/<run id>/: the adapter and training_report.json of one run."""
    return runs_dir() / str(run_id)


def resolve_base_model(text: str) -> Path:
    """The model folder that `text` names (absolute, or relative to the models directory)."""
    if not text.strip():
        raise InvalidRun({"base_model": "is required: a model folder in the models directory"})
    root = models_dir()
    try:
        folder = (root / text.strip()).resolve()  # an absolute `text` replaces `root`
    except (OSError, ValueError) as error:  # a NUL byte, a symlink loop
        raise InvalidRun({"base_model": f"cannot be resolved: {error}"}) from None
    if folder == root or not _inside(folder, root):
        raise InvalidRun({"base_model": f"must be a folder inside the models directory {root}"})
    if not folder.is_dir():
        raise InvalidRun({"base_model": f"no model folder at {folder}"})
    config = folder / "config.json"
    if not config.is_file():
        raise InvalidRun({"base_model": f"{folder} has no config.json: not a model folder"})
    escaping = sorted(
        entry.name for entry in folder.iterdir() if not _inside(entry.resolve(), root)
    )
    if escaping:
        # A symlinked weight file would let the worker read any file it can open.
        names = ", ".join(escaping)
        raise InvalidRun({"base_model": f"{names} in {folder} links outside the models directory"})
    return folder


def available_models() -> list[str]:
    """Model folders directly under the models directory, by name, for the launch form."""
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and (entry / "config.json").is_file() and _inside(entry.resolve(), root)
    )


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)
