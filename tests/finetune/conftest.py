"""Finetune fixtures: one tiny model for the whole session, built locally, never downloaded.

`tiny_model_dir` is a Hugging Face model folder (Llama, hidden 64, 2 layers, byte-level BPE,
a chat template with `{% generation %}` blocks) made by finetune.training.tiny with seed 0.
Tests must treat it as read-only: copy it before changing anything in it.
"""

import os
from pathlib import Path

import pytest

# No hub is reachable; fail fast instead of waiting on network timeouts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    # Two CPU cores are shared by the whole machine: one thread keeps runs predictable.
    torch.set_num_threads(1)
    from finetune.training.tiny import create_tiny_model

    return create_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)
