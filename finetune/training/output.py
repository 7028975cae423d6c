"""What a run leaves on disk: the adapter and training_report.json, each put in place whole.

The adapter is saved into a temporary folder beside its final place and renamed in, so a
reader (the web process, a retry) sees either no adapter or a complete one, never half a
file. A previous adapter in the way is moved aside first and removed only once the new one is
in place. Weights are safetensors only (no pickle anywhere).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

ADAPTER = "adapter"
REPORT = "training_report.json"
LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "safetensors")


def environment() -> dict[str, Any]:
    """Where the run ran and with what: for the report, and to reproduce a figure later."""
    device: dict[str, Any] = {"type": "cpu", "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        device = {"type": "cuda", "name": torch.cuda.get_device_name(0)}
    return {
        "device": device,
        "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in LIBRARIES},
    }


def peak_memory_bytes() -> int:
    """Peak GPU memory allocated by torch, or the process's peak resident set on CPU."""
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def save_adapter(model: Any, output_dir: Path) -> Path:
    """Write the LoRA weights (safetensors) and config to output_dir/adapter, atomically."""
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / ADAPTER
    staging = Path(tempfile.mkdtemp(prefix=".adapter-", dir=output_dir))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        _replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _replace_dir(staging: Path, final: Path) -> None:
    # os.replace cannot put a folder over a non-empty one: move the old one aside first.
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=".adapter-old-", dir=final.parent))
        os.replace(final, old / ADAPTER)
    os.replace(staging, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_report(output_dir: Path, report: dict[str, Any]) -> Path:
    """Write output_dir/training_report.json through a temporary file and a rename."""
    final = output_dir / REPORT
    handle, name = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=output_dir)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(report, stream, indent=2, sort_keys=True, allow_nan=False)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(name, final)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    _fsync_dir(output_dir)
    return final


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
