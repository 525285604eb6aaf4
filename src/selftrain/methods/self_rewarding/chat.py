"""The chat variant's steps 0, 1, 3 and 6: any chat model (`model.name_or_path`: a folder, a
hub name or a .gguf file), sampled through its chat template, judging with the paper's
additive 5-point prompt word for word.

- Step 0: M1 is the given model (the paper's M1 is Llama 2 70B after SFT on IFT + EFT data
  from Open Assistant, which is not available offline: a deviation).
- Step 1: 8 pool prompts shown (`Task N: ...`), the model writes the next; kept when of a
  sensible length, not a near-duplicate and not a held-out prompt.
- Step 3: the model judges each response with `ADDITIVE_5_POINT`, 3 times, averaged.
- Step 6: each model's greedy answers to held-out prompts, scored by itself and by M1's judge
  (a fixed yardstick), and head to head against M1's answers, judged by M1 in both orders (a
  win counts only when both orders agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from selftrain import stages
from selftrain.artifacts import read_rows
from selftrain.config import Generation, SamplerConfig
from selftrain.data import SELF_INSTRUCT_SEED_TASKS
from selftrain.errors import ConfigError
from selftrain.records import Pair, Problem
from selftrain.stages.prompts import FEWSHOT_HEADER, PromptFilter


def prompt_problem(text: str, pid: str) -> Problem:
    """A written prompt as a problem with no reference answer."""
    return Problem(pid, text, "")


@dataclass
class Chat:
    """The chat variant of the loop (`methods.self_rewarding.iterate` runs its steps)."""

    ctx: stages.RunContext
    row = staticmethod(stages.chat_rows)
    """Step 5's rows: conversational, so that TRL applies the chat template."""
    first: stages.Artifact | None = field(default=None, repr=False)

    def __post_init__(self):
        chat = self.ctx.cfg.self_rewarding.chat
        self.pool, self.held_out = split_seed_prompts(chat.seed_prompts or SELF_INSTRUCT_SEED_TASKS, self.sec.prompts.shots,
                                                      chat.eval_prompts)

    @property
    def sec(self):
        return self.ctx.cfg.self_rewarding

    @property
    def sampler(self) -> SamplerConfig:
        """Steps 1-3 and 6 sample the policy through its chat template."""
        return self.ctx.policy.model_copy(update={"chat": True})

    def m1(self) -> stages.Artifact:
        """Step 0: the given model."""
        self.first = stages.start_model(self.ctx, self.ctx.cfg.model)
        return self.first

    def write_prompts(self, group: str, policy: stages.Artifact) -> list[Problem]:
        """Step 1: 8 pool prompts shown, the model writes the next."""
        prompts, chat = self.sec.prompts, self.sec.chat
        keep = PromptFilter(self.pool, min_chars=chat.min_chars, max_chars=chat.max_chars, forbidden=self.held_out)
        params = replace(prompts.params(), max_new_tokens=prompts.max_new_tokens or 96)
        written = stages.write_prompts(self.ctx, group, policy, self.pool, prompts.n, prompts.shots, params, keep,
                                       prompt_problem, FEWSHOT_HEADER, numbered=True, sampler=self.sampler)
        return stages.load_problems(written)

    def judge(self, group: str, policy: stages.Artifact, problems: list[Problem], responses: stages.Artifact) -> stages.Artifact:
        """Step 3: the same model judges every response with the paper's prompt."""
        judge = self.sec.judge
        return stages.judge(self.ctx, group, policy, problems, responses, "additive-5", judge.samples, judge.params(),
                            self.sec.chat.finish, sampler=self.sampler)

    def pair_check(self, problems: list[Problem]) -> Callable[[list[Pair]], dict[str, Any]] | None:
        return None  # no grader knows the right answer to an open prompt

    def evaluate(self, group: str, model: stages.Artifact) -> None:
        """Step 6: greedy answers to the held-out prompts, scored by the model itself and by
        M1, and head to head against M1's -> RUN/<group>/answers.jsonl and the judges' files."""
        ctx, sec = self.ctx, self.sec
        problems = [Problem(f"eval-{i}", p, "") for i, p in enumerate(self.held_out)]
        answers = stages.generate(ctx, group, model, problems, Generation(k=1, temperature=0.0, max_new_tokens=sec.responses.max_new_tokens),
                                  name="answers", sampler=self.sampler, file="answers.jsonl")
        greedy = sec.judge.model_copy(update={"temperature": 0.0, "samples": 1})
        stages.judge(ctx, group, model, problems, answers, "additive-5", 1, greedy.params(), sec.chat.finish,
                     sampler=self.sampler, name="self-judge")
        if model.path != self.first.path:
            stages.judge(ctx, group, self.first, problems, answers, "additive-5", 1, greedy.params(), sec.chat.finish,
                         sampler=self.sampler, name="m1-judge")
            m1_answers = stages.Artifact(ctx.path("m1", "answers.jsonl"), self.first.fp)
            stages.pairwise(ctx, group, self.first, problems, answers, m1_answers, greedy.params(), sampler=self.sampler)


def load_prompts(path: str | Path) -> list[str]:
    """Prompts from JSON lines: `prompt`, or `instruction` (+ the first instance's input)."""
    prompts = []
    for n, row in enumerate(read_rows(path), 1):
        text = row.get("prompt") or row.get("instruction")
        if not isinstance(text, str):
            raise ConfigError(f"{path}: row {n} has no prompt or instruction (self_rewarding.chat.seed_prompts)")
        inputs = row.get("instances") or [{}]
        if isinstance(inputs[0], dict) and inputs[0].get("input"):
            text = f"{text}\n\n{inputs[0]['input']}"
        prompts.append(text.strip())
    return prompts


def split_seed_prompts(path: str | Path, shots: int, held_out: int) -> tuple[list[str], list[str]]:
    """The pool shown few-shot, and the held-out prompts (the last `held_out`)."""
    prompts = load_prompts(path)
    if len(prompts) < shots + held_out:
        raise ConfigError(f"{path} has {len(prompts)} prompts; {shots} shots and {held_out} held-out prompts need more")
    return prompts[:-held_out], prompts[-held_out:]
