from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two torch threads at most: the suite runs on 2-core machines, and oversubscribing cores
# slows tiny models many times over.
os.environ.setdefault("OMP_NUM_THREADS", "2")

TINY = {
    "task": {"arithmetic": {"human_size": 80, "pool_size": 24, "test_per_bucket": 6, "test_digits": [1, 2, 3]}},
    "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "max_length": 64}},
    "rest_em": {
        "iterations": 2,
        "sft": {"steps": 6, "batch_size": 8, "logging_steps": 3},
        "e_step": {"k": 2, "shard_size": 16, "max_new_tokens": 40},
        "m_step": {"steps": 3, "batch_size": 8, "logging_steps": 3},
    },
    "eval": {"k": 2, "max_new_tokens": 40},
}


@pytest.fixture
def tiny_cfg_dict() -> dict:
    import copy

    return copy.deepcopy(TINY)


@pytest.fixture(scope="session", params=["gpt2", "llama"])
def tiny_model_dir(request, tmp_path_factory) -> Path:
    """A tiny model folder of each architecture, saved once per session (random weights)."""
    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    folder = tmp_path_factory.mktemp(f"tiny-{request.param}") / "model"
    cfg = TinyModelConfig(arch=request.param, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    save_tiny(folder, cfg, seed=0)
    return folder
