"""The test suite's one fake: `ScriptedSampler`, a FAKE sampler (no model).

It answers each prompt with the next reply queued for it (`enqueue`, as simonw/llm's
MockModel does), or else by a rule `rule(prompt, seed, model)`; it records every prompt it
was asked (`prompts`) and continues a started answer by completing prompt + start, as a
raw-text model does. Behind `selftrain.samplers.serve.ModelServer` it plays an API teacher;
as the `scripted` sampler backend (`scripted_backend`) it plays every checkpoint of a run,
so that a method's whole loop runs in-process in seconds and a test can check which model
each stage used and which rows each training stage got (`tests/test_loops.py`).

The rules here are for the embedded arithmetic task and for chat prompts; tests with a
teacher of their own pass their rule.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from selftrain.records import SamplingParams

Rule = Callable[[str, int, str], str]
"""rule(prompt, seed, model) -> the completion."""


def digest(*parts: object) -> int:
    """A stable hash of the parts (for rules that must look arbitrary but repeat exactly)."""
    return int(hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest(), 16)


class ScriptedSampler:
    """FAKE sampler: queued replies first, then the rule; records every prompt."""

    tokenizer = None

    def __init__(self, rule: Rule | None = None, replies: Sequence[str] = (), model: str = "scripted"):
        self.rule, self.replies, self.model = rule, list(replies), model
        self.prompts: list[str] = []

    def enqueue(self, *replies: str) -> ScriptedSampler:
        self.replies.extend(replies)
        return self

    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        seen: Counter = Counter()
        out = []
        for p in prompts:
            self.prompts.append(p)
            if self.replies:
                out.append(self.replies.pop(0))
            elif self.rule is None:
                out.append("")
            else:
                out.append(self.rule(p, seed + seen[p], self.model))  # K copies of a prompt: K seeds
            seen[p] += 1
        return out

    def continue_texts(self, prompts: Sequence[str], starts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        return self.generate([p + s for p, s in zip(prompts, starts)], params, seed)


# ------------------------------------------------------------------ rules


def arithmetic(prompt: str, seed: int, model: str, knows: int = 2) -> str:
    """The embedded task as a model that knows `knows` problems in three: the worked
    solution, else the same steps with a final answer one too high. A few-shot prompt-writing request
    (problems one per line) gets a new well-formed problem. Which problems a checkpoint knows
    depends on its folder, so each model of a run answers differently."""
    from selftrain.tasks.arithmetic import aligned_solution, apply, operands

    parts = operands(prompt)
    if parts is None:  # problems one per line: write the next one
        lines = prompt.strip().splitlines()
        width = (len(lines[-1]) - 2) // 2 if lines else 4
        a, b = digest(prompt, seed) % 10 ** (width - 1), digest(seed, prompt) % 10 ** (width - 1)
        return f"{a:0{width}d}+{b:0{width}d}="
    a, op, b = parts
    width = len(prompt.split(op)[0])
    right = aligned_solution(a, b, width, op)
    if digest(prompt, seed, model) % 3 < knows:
        return right
    return right.rsplit("A:", 1)[0] + f"A:{apply(a, b, op) + 1}"


def chat(prompt: str, seed: int, model: str) -> str:
    """Chat prompts: a new task for a prompt-writing request, a score for an additive-5
    judgement, a winner for a pairwise one, else an answer."""
    h = digest(prompt, seed, model)
    if prompt.rstrip().endswith(":") and "Task " in prompt:
        return f" Describe topic number {h % 1000} in two sentences."
    if "Score: <total points>" in prompt:
        return f"It answers the question. Score: {1 + h % 5}"
    if "Winner: A" in prompt:
        return "Winner: A" if h % 2 else "Winner: B"
    return f"An answer ({h % 97})."


# ------------------------------------------------------------------ the backend


@contextmanager
def scripted_backend(rule: Rule = arithmetic) -> Iterator[list[ScriptedSampler]]:
    """While open, `sampler.backend: scripted` makes a `ScriptedSampler` over the model folder
    (it can load every checkpoint, continue and choose like a local model); yields the list
    of samplers made, in order."""
    from selftrain.samplers import BACKENDS, LOCAL, Backend, register_backend

    made: list[ScriptedSampler] = []

    def make(cfg, model: str, run_dir, turns=()) -> ScriptedSampler:
        made.append(ScriptedSampler(rule, model=model))
        return made[-1]

    register_backend(Backend("scripted", make, lambda cfg: LOCAL))
    try:
        yield made
    finally:
        BACKENDS.pop("scripted", None)
