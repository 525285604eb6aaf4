"""The prompts stage: the model writes new prompts, few-shot from a pool of prompts
(self-instruction creation), and the filters they pass.

Self-Rewarding (Yuan et al. 2024, section 2.3) shows the model 8 prompts drawn from the
seed pool and takes the new prompt it writes next; Self-Instruct (Wang et al. 2022) does
the same with 6 human and 2 generated instructions. What comes back is filtered: too short
or too long, an exact duplicate, a near-duplicate of the pool or of an earlier new prompt
(ROUGE-L >= 0.7, `selftrain.data.novelty`), or rejected by a task's own check.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from selftrain.artifacts import describe, fingerprint, read_jsonl, write_jsonl
from selftrain.data.novelty import NoveltyFilter
from selftrain.records import Problem, SamplingParams
from selftrain.samplers.base import Sampler
from selftrain.stages.context import Artifact, RunContext

FEWSHOT_HEADER = "Come up with a series of tasks and questions. Only the task/question, no further text/explanation.\n\n"
"""The instruction of Self-Rewarding's prompt-generation prompt (its Figure 6); each example follows as `Task N: ...`."""


def fewshot_prompt(examples: Sequence[str], header: str = FEWSHOT_HEADER, numbered: bool = True) -> str:
    """The examples numbered, and the next number left open for the model; unnumbered,
    one per line with the next line left open (the compact form a tiny model can hold).

    >>> print(fewshot_prompt(["Say hi.", "Add 2 and 3."], header=""))
    Task 1: Say hi.
    Task 2: Add 2 and 3.
    Task 3:
    >>> fewshot_prompt(["1+2=", "3+4="], header="", numbered=False)
    '1+2=\\n3+4=\\n'
    """
    if not numbered:
        return header + "".join(e.strip() + "\n" for e in examples)
    lines = [f"Task {i}: {e.strip()}" for i, e in enumerate(examples, 1)]
    return header + "\n".join(lines) + f"\nTask {len(examples) + 1}:"


def first_task(completion: str) -> str:
    """The new prompt: the completion up to the next `Task N:` or the end of its line.

    >>> first_task(" Name a color.\\nTask 4: Count to 3.")
    'Name a color.'
    """
    return completion.split("\nTask ")[0].split("\n")[0].strip()


@dataclass
class PromptFilter:
    """What a new prompt must pass; each rejection is counted by its reason."""

    pool: Sequence[str]
    min_chars: int = 3
    max_chars: int = 1000
    novelty_threshold: float | None = 0.7
    """ROUGE-L at or above which a prompt is a near-duplicate; None: exact duplicates only."""
    check: Callable[[str], bool] | None = None
    """A task's own test of a well-formed prompt (e.g. the arithmetic format); it stands in
    fingerprints by its `describe()` (or, a plain function, its source)."""
    forbidden: Sequence[str] = ()
    """Prompts that must never be made (e.g. the test set's, against contamination)."""
    rejected: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self._seen = set(self.pool) | set(self.forbidden)
        self._novelty = NoveltyFilter(self.pool, self.novelty_threshold) if self.novelty_threshold else None

    def describe(self) -> dict:
        """The filter's settings, for a stage's fingerprint."""
        return {"chars": [self.min_chars, self.max_chars], "novelty": self.novelty_threshold, "check": describe(self.check),
                "pool": fingerprint(list(self.pool)), "forbidden": fingerprint(list(self.forbidden))}

    def accept(self, prompt: str) -> bool:
        reason = None
        if not self.min_chars <= len(prompt) <= self.max_chars:
            reason = "length"
        elif prompt in self._seen:
            reason = "duplicate"
        elif self.check is not None and not self.check(prompt):
            reason = "malformed"
        elif self._novelty is not None and not self._novelty.add(prompt):
            reason = "near-duplicate"
        if reason:
            self.rejected[reason] += 1
            return False
        self._seen.add(prompt)
        return True


def create_prompts(
    sampler: Sampler,
    pool: Sequence[str],
    n: int,
    params: SamplingParams,
    seed: int,
    shots: int = 8,
    keep_filter: PromptFilter | None = None,
    header: str = FEWSHOT_HEADER,
    max_rounds: int = 10,
    numbered: bool = True,
) -> tuple[list[str], dict[str, int]]:
    """Up to `n` new prompts that pass the filter, and the counts of what was rejected.

    Each round asks for the prompts still missing (with some slack for rejections), each
    request showing `shots` prompts drawn from the pool; it stops after `max_rounds`.
    """
    if len(pool) < shots:
        raise ValueError(f"the pool has {len(pool)} prompts; {shots} are shown per request")
    keep_filter = keep_filter or PromptFilter(pool)
    rng = random.Random(seed)
    kept: list[str] = []
    asked = 0
    for round_ in range(max_rounds):
        missing = n - len(kept)
        if missing <= 0:
            break
        requests = [fewshot_prompt(rng.sample(list(pool), shots), header, numbered) for _ in range(missing + missing // 2 + 1)]
        asked += len(requests)
        for completion in sampler.generate(requests, params, seed + round_):
            prompt = first_task(completion)
            if keep_filter.accept(prompt) and len(kept) < n:
                kept.append(prompt)
    return kept, {"requested": asked, "kept": len(kept), **dict(keep_filter.rejected)}


def write_prompts(ctx: RunContext, group: str, model: Artifact, pool: Sequence[str], n: int, shots: int,
                  params: SamplingParams, keep: PromptFilter, to_problem: Callable[[str, str], Problem],
                  header: str = "", numbered: bool = False, sampler=None) -> Artifact:
    """`n` new prompts written by `model`, few-shot from `pool` (`shots` shown per request)
    and filtered by `keep` -> RUN/<group>/prompts.jsonl, one Problem each (`to_problem(text, id)`)."""
    out = ctx.path(group, "prompts.jsonl")
    seed = ctx.seed(f"{group}/prompts")
    fp = fingerprint("prompts", model.fp, list(pool), n, shots, params, header, numbered, keep.describe(),
                     describe(to_problem), seed)

    def work() -> dict[str, Any]:
        made, counts = create_prompts(ctx.sampler(model, sampler), pool, n, params, seed, shots=shots,
                                      keep_filter=keep, header=header, numbered=numbered)
        write_jsonl(out, (to_problem(p, f"{group}-{i}").to_json() for i, p in enumerate(made)))
        return counts

    ctx.stage(f"{group}/prompts", fp, work, outputs={"prompts": out})
    return Artifact.of(fp, "prompts", prompts=out)


def load_problems(prompts: Artifact) -> list[Problem]:
    return [Problem.from_json(r) for r in read_jsonl(prompts.path)]
