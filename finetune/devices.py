"""Which device runs finetunes, and how much memory it has, without importing torch.

The web process compares a run's memory estimate with the target device before launch. It
cannot look at the GPU worker's hardware, so it takes FINETUNE_DEVICE_MEMORY_GB when set and
otherwise the device that the GPU worker recorded on its latest run. The worker detects its
device with `nvidia-smi` (or the host's RAM on a CPU-only machine): stdlib only, so the task
module stays free of torch until training starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from django.conf import settings

GIB = 1024**3


@dataclass(frozen=True)
class Device:
    name: str
    memory: int  # bytes
    source: str  # how we know: "setting", "last run", "detected"


def target_device() -> Device | None:
    """The GPU worker's device as far as the web process can know it; None if unknown."""
    configured = getattr(settings, "FINETUNE_DEVICE_MEMORY_GB", None) or os.environ.get(
        "FINETUNE_DEVICE_MEMORY_GB"
    )
    if configured:
        return Device("configured device", int(float(configured) * GIB), "setting")
    from finetune.models import FinetuneRun

    last = (
        FinetuneRun.objects.exclude(device_memory=None)
        .order_by("-started_at", "-pk")
        .values_list("device", "device_memory")
        .first()
    )
    return Device(last[0], last[1], "last run") if last and last[1] else None


def detect() -> Device:
    """This machine's first visible GPU per nvidia-smi, else its CPU and RAM."""
    return _nvidia() or Device("cpu", _host_memory(), "detected")


def _nvidia() -> Device | None:
    executable = shutil.which("nvidia-smi")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    if executable is None or not visible.isdigit():
        return None
    query = [executable, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(  # noqa: S603 - a fixed command line
            [*query, f"--id={visible}"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        name, mebibytes = out.strip().splitlines()[0].rsplit(",", 1)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return Device(f"cuda:{visible} {name.strip()}", int(mebibytes) * 1024**2, "detected")


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
