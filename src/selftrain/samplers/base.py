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
