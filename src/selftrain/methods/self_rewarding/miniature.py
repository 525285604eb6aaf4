"""The miniature's steps 0, 1, 3 and 6, and its controls: the tiny model on the embedded task
(addition and subtraction), where both abilities are measured exactly.

- Step 0: M0 is the tiny model trained on the worked solutions (`miniature.pretrain`); M1 is
  M0 trained on IFT (the worked solutions), prompt writing (8 pool prompts, then a new one)
  and EFT (M0's own answers to pool problems, half right and half wrong, each with its exact
  check: `tasks.arithmetic_judge.eft_rows`). The judge's fixed held-out pairs are M1's own
  right and wrong answers to test problems.
- Step 1: the model writes new problems; a problem is kept when well-formed, in range, new
  and never a test problem.
- Step 3: the model checks each answer by the inverse operation (`CheckJudge`), 3 times,
  averaged; `pair_judge: grader` puts the exact check in its place.
- Step 6: answer accuracy (the task's grader, greedy) and the judge's pairwise accuracy.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from selftrain import stages
from selftrain.config import Generation, TrainConfig
from selftrain.records import Pair, Problem
from selftrain.stages.prompts import PromptFilter, fewshot_prompt
from selftrain.tasks.arithmetic_judge import (
    GraderAsJudge,
    WellFormed,
    eft_rows,
    judge_template,
    problem_from_prompt,
    truly_better,
)


@dataclass
class Miniature:
    """The miniature variant of the loop (`methods.self_rewarding.iterate` runs its steps)."""

    ctx: stages.RunContext
    pair_judge: Literal["self", "grader"] = "self"
    sampler = None
    """Steps 1-3 sample the policy as it is (raw text)."""
    row = staticmethod(stages.prompt_rows)
    """Step 5's rows: prompt, chosen, rejected as raw text."""
    held_out: stages.Artifact | None = field(default=None, repr=False)
    data: stages.Rows | None = field(default=None, repr=False)

    @property
    def sec(self):
        return self.ctx.cfg.self_rewarding

    @property
    def width(self) -> int:
        return self.ctx.task.width

    def m1(self) -> stages.Artifact:
        """Step 0: M0 (the tiny model trained on the worked solutions alone) -> M1 (SFT on IFT,
        prompt writing and EFT: M0's own answers, judged exactly); then the fixed held-out
        judge pairs from M1's answers to test problems."""
        ctx, mini = self.ctx, self.sec.miniature
        m0 = stages.start_model(ctx, ctx.cfg.model)
        if mini.pretrain is not None:
            m0 = stages.sft(ctx, "m0", m0, stages.human_rows(ctx), mini.pretrain)
        k = max(2, -(-2 * mini.eft_size // max(len(ctx.pool), 1)))  # enough for half right, half wrong
        own = stages.generate(ctx, "eft", m0, ctx.pool, Generation(k=k, temperature=1.0,
                                                                    max_new_tokens=self.sec.responses.max_new_tokens))
        self.data = m1_rows(ctx, own)
        m1 = stages.sft(ctx, "m1", m0, self.data, mini.sft)
        self.held_out = held_out_pairs(ctx, m1)
        return m1

    def write_prompts(self, group: str, policy: stages.Artifact) -> list[Problem]:
        """Step 1: `prompts.n` new problems, `prompts.shots` pool prompts shown at a time; kept
        when well-formed, in range, new and never a test problem."""
        ctx, prompts = self.ctx, self.sec.prompts
        pool = [p.prompt for p in ctx.human + ctx.pool]
        keep = PromptFilter(pool, novelty_threshold=None, forbidden=[p.prompt for p in ctx.test],
                            check=WellFormed(self.width, tuple(ctx.task.cfg.operations)), min_chars=1)
        params = replace(prompts.params(), max_new_tokens=prompts.max_new_tokens or 2 * self.width + 4)
        written = stages.write_prompts(ctx, group, policy, pool, prompts.n, prompts.shots, params, keep, problem_from_prompt)
        return stages.load_problems(written)

    def judge(self, group: str, policy: stages.Artifact, problems: list[Problem], responses: stages.Artifact) -> stages.Artifact:
        """Step 3: `policy` checks every response (`judge.samples` checks, averaged); with
        `pair_judge: grader`, the exact check in its place."""
        if self.pair_judge == "grader":
            return stages.score(self.ctx, group, responses, problems, GraderAsJudge(self.width))
        judge = self.sec.judge
        return stages.judge(self.ctx, group, policy, problems, responses, judge_template(self.width), judge.samples, judge.params())

    def pair_check(self, problems: list[Problem]) -> Callable[[list[Pair]], dict[str, Any]]:
        """Step 4's record: how many chosen answers are truly right, rejected truly wrong."""
        return lambda made: truly_better(made, problems)

    def evaluate(self, group: str, model: stages.Artifact) -> None:
        """Step 6: answer accuracy on the test set, and the model's pairwise accuracy as a judge."""
        ctx = self.ctx
        stages.evaluate(ctx, group, model, ctx.cfg.eval)
        greedy = self.sec.judge.model_copy(update={"temperature": 0.0}).params()
        stages.evaluate_judge(ctx, group, model, self.held_out, judge_template(self.width), greedy)


def controls(ctx: stages.RunContext, variant: Miniature, m1: stages.Artifact, iterate) -> None:
    """The controls from the same M1 (measurements, not part of the method): the loop with the
    exact check making the pairs (`grader-iter-NN`), and SFT on M1's own data for as many
    steps as each update took (`sft-iter-NN`)."""
    mini = ctx.cfg.self_rewarding.miniature
    if "grader" in mini.controls and mini.pair_judge != "grader":
        iterate(ctx, replace(variant, pair_judge="grader"), m1, "grader-")
    if "sft" in mini.controls:
        sft_control(ctx, variant, m1)


def sft_control(ctx: stages.RunContext, variant: Miniature, m1: stages.Artifact) -> None:
    """The compute-matched control: each iteration, SFT on M1's own data for as many steps
    as the method's iteration took, with its batch size and learning rate."""
    sec = ctx.cfg.self_rewarding
    policy = m1
    for t in range(1, sec.iterations + 1):
        done = ctx.run.record(f"{stages.group('iter', t)}/train")
        steps = done.info.get("steps") if done is not None else None
        if not steps:
            break  # the method's iteration has not trained (or had no pairs): nothing to match
        cfg = TrainConfig(**{**sec.dpo.model_dump(include=set(TrainConfig.model_fields)), "steps": steps, "max_epochs": None})
        group = stages.group("iter", t, "sft-")
        policy = stages.sft(ctx, group, policy, variant.data, cfg)
        variant.evaluate(group, policy)


def held_out_pairs(ctx: stages.RunContext, m1: stages.Artifact) -> stages.Artifact:
    """Fixed held-out judge pairs: M1's answers to test problems (8 samples each at T = 1),
    one right and one wrong per problem where it has both -> RUN/judge-eval/pairs.jsonl."""
    sec = ctx.cfg.self_rewarding
    gen = Generation(k=8, temperature=1.0, max_new_tokens=sec.responses.max_new_tokens)
    samples = stages.generate(ctx, "judge-eval", m1, ctx.test, gen, seed=ctx.seed("judge-eval"))
    scores = stages.score(ctx, "judge-eval", samples, ctx.test, ctx.grader)
    return stages.filter_rows(ctx, "judge-eval", "pairs", [samples, scores], right_and_wrong,
                              {"n": sec.miniature.eval_pairs, "seed": ctx.cfg.seed, "order": [p.id for p in ctx.test]})


def right_and_wrong(samples: list[dict[str, Any]], scores: list[dict[str, Any]], n: int, seed: int,
                    order: list[str]) -> stages.Filtered:
    """Per problem (in `order`), its first right and first wrong sample as a pair; `n` of them,
    drawn by a seeded shuffle."""
    right: dict[str, str] = {}
    wrong: dict[str, str] = {}
    prompts = {}
    for s, sc in zip(samples, scores):
        ok = sc["value"] is not None and sc["value"] > 0.5
        (right if ok else wrong).setdefault(s["problem_id"], s["completion"])
        prompts[s["problem_id"]] = s["prompt"]
    rows = [{"id": pid, "prompt": prompts[pid], "better": right[pid], "worse": wrong[pid]}
            for pid in order if pid in right and pid in wrong]
    random.Random(seed).shuffle(rows)
    return stages.Filtered(rows[:n], counts={"pairs": min(len(rows), n)})


def prompt_writing_rows(prompts: list[str], shots: int, n: int, seed: int) -> list[dict[str, str]]:
    """The prompt-writing format for M1 (a deviation: M0 here cannot few-shot)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        chosen = rng.sample(prompts, shots + 1)
        rows.append({"prompt": fewshot_prompt(chosen[:shots], header="", numbered=False), "completion": chosen[shots]})
    return rows


def m1_rows(ctx: stages.RunContext, own: stages.Artifact) -> stages.Rows:
    """M1's data: IFT (worked solutions), prompt writing, and EFT (judgements of M0's own
    answers in `own`)."""
    sec = ctx.cfg.self_rewarding
    mini, width = sec.miniature, ctx.task.width
    pool = [p.prompt for p in ctx.human + ctx.pool]

    def load() -> list[dict[str, str]]:
        ift = stages.human_rows(ctx).load() * mini.ift_repeats
        writing = prompt_writing_rows(pool, sec.prompts.shots, mini.writing_size or len(ctx.human), ctx.seed("writing"))
        eft = eft_rows(ctx.pool, stages.load_samples(own.path), width, mini.eft_size, ctx.seed("eft"))
        return ift + writing + eft

    return stages.made_rows(load, ctx.data_fp, own, judge_template(width).name, sec.prompts.shots, mini.eft_size,
                            mini.ift_repeats, mini.writing_size, sources=("human", "prompt writing", ctx.relative(own.path)))
