"""Loading causal LMs and tokenizers by Hugging Face name or local folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _loading(what: str, name_or_path: str | Path) -> Iterator[None]:
    """Turn transformers' loading errors into one that says what to do."""
    try:
        yield
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"cannot load {what} from {str(name_or_path)!r}: {err}\n"
            "Give a local model folder, or a Hugging Face name with network access to the hub."
        ) from None


def load_tokenizer(name_or_path: str | Path):
    from transformers import AutoTokenizer

    with _loading("a tokenizer", name_or_path):
        tok = AutoTokenizer.from_pretrained(str(name_or_path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str | Path, device: str = "cpu"):
    from transformers import AutoModelForCausalLM

    with _loading("a causal LM", name_or_path):
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path))
    return model.to(device)
