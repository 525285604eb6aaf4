"""Loading causal LMs and tokenizers by Hugging Face name, local folder or GGUF file.

A GGUF file (`.../SmolLM2-135M-Instruct.Q4_1.gguf`) is de-quantized to float32 by
transformers on load (tens of seconds); `save_pretrained` of the result gives an ordinary
folder that loads in a second.
"""

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


def _gguf(name_or_path: str | Path) -> tuple[str, dict]:
    """A path to a `.gguf` file loads as its folder plus `gguf_file=` (needs the `gguf` package)."""
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"no GGUF file at {str(path)!r}")
        return str(path.parent), {"gguf_file": path.name}
    return str(name_or_path), {}


def load_tokenizer(name_or_path: str | Path):
    from transformers import AutoTokenizer

    where, kwargs = _gguf(name_or_path)
    with _loading("a tokenizer", name_or_path):
        tok = AutoTokenizer.from_pretrained(where, **kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str | Path, device: str = "cpu"):
    from transformers import AutoModelForCausalLM

    where, kwargs = _gguf(name_or_path)
    with _loading("a causal LM", name_or_path):
        model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    if kwargs:
        model = _plain(model)
    return model.to(device)


def _plain(model):
    """A GGUF model is de-quantized on load but still marked quantized, which forbids
    `save_pretrained`; the same weights in a fresh model of the same config are plain."""
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain
