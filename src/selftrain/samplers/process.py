"""A sampler in a child process of its own (`ProcessSampler`): the engine's memory goes back
to the system with the process when it is closed. The fallback for a second vLLM engine on a
GPU, which the process that holds the first could not start (`samplers.engine`); the child
speaks `selftrain.plugins.Worker`'s framing, and every call of the sampler interface
(`generate`, `continue_texts`, `choose_next`, `switch`, `rest`) is forwarded to it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selftrain.config import SamplerConfig
from selftrain.errors import SelftrainError


def serve_sampler(cfg: dict, model: str, run_dir: str | None, turns: list) -> Callable[..., Any]:
    """In the child: the sampler `cfg` makes over `model`, and a function calling its methods by name."""
    from selftrain.samplers.registry import backend

    settings = SamplerConfig.model_validate(cfg)
    sampler = backend(settings.backend).make(settings, model, Path(run_dir) if run_dir else None, tuple(map(tuple, turns)))

    def call(method: str, *args: Any) -> Any:
        if method == "close":
            return getattr(sampler, "close", lambda: None)()
        return getattr(sampler, method)(*args)

    return call


class ProcessSampler:
    """`cfg`'s sampler over `model`, in a child process; `close()` ends the process."""

    def __init__(self, cfg: SamplerConfig, model: str | Path, run_dir: Path | None = None,
                 turns: Sequence[tuple[str, str]] = ()):
        from selftrain.models import load_tokenizer
        from selftrain.plugins import Worker

        self.model_path = str(model)
        self.worker = Worker("selftrain.samplers.process:serve_sampler", "sampler (child process)",
                             args=(cfg.model_dump(mode="json"), self.model_path, str(run_dir) if run_dir else None,
                                   [list(t) for t in turns]), ready_timeout=1800)
        self.tokenizer = load_tokenizer(model)

    def _call(self, method: str, *args: Any) -> Any:
        if self.worker is None:
            raise SelftrainError("the sampler's child process was closed")
        kind, detail = self.worker.call((method, *args), None)
        if kind != "ok":
            raise SelftrainError(f"the sampler's child process failed in {method}: {kind} {detail}")
        return detail

    def generate(self, prompts: Sequence[str], params, seed: int) -> list[str]:
        return self._call("generate", list(prompts), params, seed)

    def continue_texts(self, prompts: Sequence[str], starts: Sequence[str], params, seed: int) -> list[str]:
        return self._call("continue_texts", list(prompts), list(starts), params, seed)

    def choose_next(self, prompts: Sequence[str], starts: Sequence[str], options: Sequence[str]) -> list[int]:
        return self._call("choose_next", list(prompts), list(starts), list(options))

    def switch(self, model_path: str | Path) -> str | None:
        mode = self._call("switch", str(model_path))
        if mode is not None:
            self.model_path = str(model_path)
        return mode

    def rest(self) -> None:
        self._call("rest")

    def close(self) -> None:
        if self.worker is not None:
            try:
                self.worker.call(("close",), 120)
            finally:
                self.worker.stop()
                self.worker = None
