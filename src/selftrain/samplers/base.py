"""The sampler interface: prompts and sampling parameters in, one completion per prompt out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    top_k: int = 0
    """0 turns top-k filtering off."""
    max_new_tokens: int = 64

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Sampler(Protocol):
    """Any backend: `generate(prompts, params, seed)[i]` completes `prompts[i]`.

    The same prompt may appear several times (K samples of one problem). The same prompts,
    parameters and seed must give the same completions, so that a resumed run repeats an
    uninterrupted one.
    """

    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str]: ...


@dataclass(frozen=True)
class Failed:
    """A row a backend gave up on (a remote API, after its retries): what went wrong, and
    how many attempts were made. It takes the row's place, so that nothing is silently
    dropped: a method writes it to its failed-rows file and counts it in the report."""

    error: str
    attempts: int


def generate_or_fail(sampler: Sampler, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str | Failed]:
    """`sampler.generate`, except that a backend that can fail single rows returns `Failed`
    for them instead of failing the whole call (local models never do)."""
    method = getattr(sampler, "generate_or_fail", None)
    if method is not None:
        return method(prompts, params, seed)
    return list(sampler.generate(prompts, params, seed))


def continue_texts(sampler: Sampler, prompts: Sequence[str], starts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
    """Continue each answer from a given start (an assistant prefill): what follows
    `starts[i]` in the answer to `prompts[i]`. A raw-text sampler completes the prompt and the
    start joined; a chat sampler (`ChatTemplateSampler`) puts the start after its template's
    assistant header. A chat endpoint cannot be prefilled: ConfigError."""
    method = getattr(sampler, "continue_texts", None)
    if method is not None:
        return method(prompts, starts, params, seed)
    if getattr(sampler, "mode", None) == "chat":
        from selftrain.errors import ConfigError

        raise ConfigError("a chat-completions endpoint cannot continue a started answer; use mode 'completion'")
    return sampler.generate([p + s for p, s in zip(prompts, starts)], params, seed)
