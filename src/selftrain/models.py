"""Loading causal LMs and tokenizers by Hugging Face name or local folder."""

from __future__ import annotations

import os
from pathlib import Path

from selftrain.errors import ModelLoadError


def set_torch_threads(n: int | None) -> int:
    """Use `n` CPU threads, or as many cores as this process may run on; returns the count.

    Oversubscribing cores (more threads than free cores) slows small models many times over.
    """
    import torch

    if n is None:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def load_tokenizer(name_or_path: str | Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path))
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"cannot load a tokenizer from {name_or_path!r}: {err}\n"
            "Give a local model folder, or a Hugging Face name with network access to the hub."
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str | Path, device: str = "cpu"):
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path))
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"cannot load a causal LM from {name_or_path!r}: {err}\n"
            "Give a local model folder, or a Hugging Face name with network access to the hub."
        ) from None
    return model.to(device)
