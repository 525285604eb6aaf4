"""The sampler interface: prompts and sampling parameters in, one completion per prompt out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from selftrain.records import SamplingParams

__all__ = ["SamplingParams", "Sampler", "Failed", "Continues", "ChoosesNext", "FailsRows", "MapsShards", "Shard",
           "map_shards", "generate_or_fail"]


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


# Optional abilities. A backend declares which it has (`selftrain.samplers.BACKENDS`); a
# method declares which it needs, and the config is refused before any work when they differ.


@runtime_checkable
class Continues(Protocol):
    """Can continue a started answer (an assistant prefill)."""

    def continue_texts(self, prompts: Sequence[str], starts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        """What follows `starts[i]` in the answer to `prompts[i]`."""
        ...


@runtime_checkable
class ChoosesNext(Protocol):
    """Can read next-token probabilities: the most probable of a few options."""

    def choose_next(self, prompts: Sequence[str], starts: Sequence[str], options: Sequence[str]) -> list[int]: ...


@runtime_checkable
class FailsRows(Protocol):
    """Can fail single rows (a remote API after its retries) instead of the whole call."""

    def generate_or_fail(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str | Failed]: ...


Shard = tuple[int, Sequence[str], SamplingParams, int]
"""A shard of a stage's requests: its number, prompts, sampling parameters and seed."""


@runtime_checkable
class MapsShards(Protocol):
    """Can sample many shards at once (a pool of Ray workers)."""

    def map_shards(self, jobs: Iterable[Shard]) -> Iterator[tuple[int, list[str]]]: ...


def map_shards(sampler: Sampler, jobs: Iterable[Shard]) -> Iterator[tuple[int, list[str]]]:
    """(shard number, completions) for each (number, prompts, params, seed) job: one after
    the other here, or spread over workers by a sampler that can (in the order they finish)."""
    if isinstance(sampler, MapsShards):
        yield from sampler.map_shards(jobs)
        return
    for j, prompts, params, seed in jobs:
        yield j, sampler.generate(prompts, params, seed)


def generate_or_fail(sampler: Sampler, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str | Failed]:
    """`sampler.generate`, except that a backend that can fail single rows returns `Failed`
    for them instead of failing the whole call (local models never do)."""
    if isinstance(sampler, FailsRows):
        return sampler.generate_or_fail(prompts, params, seed)
    return list(sampler.generate(prompts, params, seed))
