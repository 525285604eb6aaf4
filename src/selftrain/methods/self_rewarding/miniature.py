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

The remedies' miniature forms: the meta-judge checks each check by the inverse operation
again (for the check `0432-0085=` solved to r, `r+0085=` must give 432), the same judge
applied to its own judgements; the EFT refresh answers pool problems (whose answers the task
knows) and pairs the exact check against the model's own where their verdicts differ; M0 is
the anchor and the previous judge of iteration 1.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from selftrain import stages
from selftrain.artifacts import read_jsonl
from selftrain.config import Generation, TrainConfig
from selftrain.methods.self_rewarding.config import Remedies
from selftrain.records import Pair, Problem, SamplingParams
from selftrain.stages.prompts import PromptFilter, fewshot_prompt
from selftrain.stages.self_rewarding import evaluate_judge, judge_pairs
from selftrain.tasks.arithmetic import aligned_solution, operation
from selftrain.tasks.arithmetic_judge import (
    CheckJudge,
    GraderAsJudge,
    WellFormed,
    eft_rows,
    exact_judgement,
    judge_template,
    problem_from_prompt,
    truly_better,
)


@dataclass
class Miniature:
    """The miniature variant of the loop (`methods.self_rewarding.iterate` runs its steps)."""

    ctx: stages.RunContext
    remedies: Remedies = None  # type: ignore[assignment]
    """The remedies this loop runs (None given: the config's)."""
    pair_judge: Literal["self", "grader"] = "self"
    m0: stages.Artifact | None = field(default=None, repr=False)
    """The model before step 0's SFT: the anchor (`anchor.model: m0`) and iteration 1's previous judge."""
    held_out: stages.Artifact | None = field(default=None, repr=False)
    data: stages.Rows | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.remedies is None:
            self.remedies = self.sec.remedies

    @property
    def sampler(self) -> None:
        """Steps 1-3 sample the policy as it is (raw text)."""
        return None

    @property
    def row(self) -> Callable[[Pair], dict[str, Any]]:
        """Step 5's rows: prompt, chosen, rejected as raw text."""
        return stages.prompt_rows

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
        m1 = stages.sft(ctx, "m1", m0, self.data, mini.sft, validation=validation_rows(ctx, mini.validation_size),
                        validation_problems=ctx.pool[-mini.validation_size:], max_new_tokens=self.sec.responses.max_new_tokens)
        self.m0 = m0
        self.held_out = held_out_pairs(ctx, m1)
        return m1

    def anchor(self, m1: stages.Artifact) -> stages.Artifact:
        """The anchor model of `remedies.anchor`."""
        return self.m0 if self.remedies.anchor.model == "m0" else m1

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

    def judge(self, group: str, policy: stages.Artifact, problems: list[Problem], responses: stages.Artifact,
              name: str = "judge") -> stages.Artifact:
        """Step 3: `policy` checks every response (`judge.samples` checks, averaged); with
        `pair_judge: grader`, the exact check in its place."""
        if self.pair_judge == "grader":
            return stages.score(self.ctx, group, responses, problems, GraderAsJudge(self.width))
        judge = self.sec.judge
        return stages.judge(self.ctx, group, policy, problems, responses, judge_template(self.width), judge.samples,
                            judge.params(), name=name)

    def meta_judge(self, group: str, policy: stages.Artifact, problems: list[Problem], scores: stages.Artifact) -> stages.Artifact:
        """Meta-Rewarding's judge pairs: `policy` checks each of its checks of a response by
        the inverse operation again; of a response's checks, the best by that meta-check
        against the worst (scored 5 against at most 3, the workings different)."""
        judgements = scores["judgements"]
        width, params, seed = self.width, self.sec.judge.params(), self.ctx.seed(f"{group}/meta-judge")
        pairs = self.sec.pairs

        def make(sampler) -> tuple[list[Pair], dict[str, Any]]:
            return meta_pairs(sampler, read_jsonl(judgements), width, params, seed,
                              pairs.min_chosen_score or 5.0, pairs.max_rejected_score or 3.0)

        return judge_pairs(self.ctx, group, "meta-judge", policy, make, scores, width, params, seed)

    def eft_refresh(self, group: str, policy: stages.Artifact) -> stages.Artifact:
        """EFT refresh (uses labels): `policy` answers `eft_refresh.problems` pool problems and
        checks each answer once; where its verdict differs from the exact check's, the exact
        check's working is chosen against its own."""
        ctx, n = self.ctx, self.remedies.eft_refresh.problems
        labelled = ctx.pool[:n]
        answers = stages.generate(ctx, group, policy, labelled, self.sec.responses, name="eft-answers")
        checked = stages.judge(ctx, group, policy, labelled, answers, judge_template(self.width), 1, self.sec.judge.params(),
                               name="eft-judge")
        return stages.filter_rows(ctx, group, "eft-pairs", [answers, checked.part("judgements")], grounded_pairs,
                                  {"width": self.width})

    def pair_check(self, problems: list[Problem]) -> Callable[[list[Pair]], dict[str, Any]]:
        """Step 4's record: how many chosen answers are truly right, rejected truly wrong."""
        return lambda made: truly_better(made, problems)

    def evaluate(self, group: str, model: stages.Artifact) -> None:
        """Step 6: answer accuracy on the test set, and the model's pairwise accuracy as a judge."""
        ctx = self.ctx
        stages.evaluate(ctx, group, model, ctx.cfg.eval)
        greedy = self.sec.judge.model_copy(update={"temperature": 0.0}).params()
        evaluate_judge(ctx, group, model, self.held_out, judge_template(self.width), greedy)


def controls(ctx: stages.RunContext, variant: Miniature, m1: stages.Artifact, iterate) -> None:
    """The controls from the same M1 (measurements, not part of the method): the loop with the
    exact check making the pairs (`grader-iter-NN`), and SFT on M1's own data for as many
    steps as each update took (`sft-iter-NN`)."""
    mini = ctx.cfg.self_rewarding.miniature
    if "grader" in mini.controls and mini.pair_judge != "grader":
        iterate(ctx, replace(variant, pair_judge="grader", remedies=Remedies()), m1, "grader-")
    if "sft" in mini.controls:
        sft_control(ctx, variant, m1)


def sft_control(ctx: stages.RunContext, variant: Miniature, m1: stages.Artifact, of: str = "") -> None:
    """The compute-matched control: each iteration, SFT on M1's own data for as many steps
    as the iteration of the loop `of` (its groups' prefix) took, with its batch size and
    learning rate -> groups `sft-<of>iter-NN`."""
    sec = ctx.cfg.self_rewarding
    policy = m1
    for t in range(1, sec.iterations + 1):
        done = ctx.run.record(f"{stages.group('iter', t, of)}/train")
        steps = done.info.get("steps") if done is not None else None
        if not steps:
            break  # the method's iteration has not trained (or had no pairs): nothing to match
        cfg = TrainConfig(**{**sec.dpo.model_dump(include=set(TrainConfig.model_fields)), "steps": steps, "max_epochs": None})
        group = stages.group("iter", t, "sft-" + of)
        policy = stages.sft(ctx, group, policy, variant.data, cfg)
        variant.evaluate(group, policy)


def judged_check(output: str) -> tuple[str, str] | None:
    """A judgement's check and the model's working of it (`CheckJudge`'s text), or None for
    a response that had no answer to check.

    >>> judged_check("0432-0085=2-5-0=17 3-8-1=14 4-0-1=03 0-0-0=00 A:347 | Score: 5")
    ('0432-0085=', '2-5-0=17 3-8-1=14 4-0-1=03 0-0-0=00 A:347')
    >>> judged_check("no answer Score: 0") is None
    True
    """
    if not isinstance(output, str) or " | Score: " not in output:
        return None
    head = output.rsplit(" | Score: ", 1)[0]
    check, _, working = head.partition("=")
    return f"{check}=", working


def meta_pairs(sampler, judgements: list[dict[str, Any]], width: int, params: SamplingParams, seed: int,
               min_chosen: float, max_rejected: float) -> tuple[list[Pair], dict[str, Any]]:
    """The miniature's meta-judge: every judgement (a check solved) is itself checked by the
    inverse operation (`CheckJudge` on the check and its working); per response, the
    judgement the meta-check scores best against the one it scores worst."""
    asks = [(f"{r['problem_id']}/{r['index']}", found) for r in judgements for found in map(judged_check, r["outputs"]) if found]
    meta = CheckJudge(sampler, judge_template(width), samples=1, params=params, seed=seed)
    scores = meta([Problem(key, check, "") for key, (check, _) in asks], [working for _, (_, working) in asks])
    by_response: dict[str, list[tuple[float, str, str]]] = {}
    for (key, (check, working)), sc in zip(asks, scores):
        by_response.setdefault(key, []).append((sc.value or 0.0, check, working))
    made, disagree = [], 0
    for key, got in by_response.items():
        if len({w for _, _, w in got}) > 1:
            disagree += 1
        best, worst = max(got, key=lambda g: g[0]), min(got, key=lambda g: g[0])
        if best[0] >= min_chosen and worst[0] <= max_rejected and best[2] != worst[2]:
            made.append(Pair(f"meta:{key}", best[1], best[2], worst[2], best[0], worst[0]))
    return made, {"judgements": len(asks), "responses": len(by_response), "responses_with_different_checks": disagree,
                  "meta_score_mean": round(sum(s.value or 0.0 for s in scores) / max(len(scores), 1), 4)}


def grounded_pairs(samples: list[dict[str, Any]], judgements: list[dict[str, Any]], width: int) -> stages.Filtered:
    """The EFT refresh's judge pairs: for each answer to a labelled problem, the exact check
    against the model's own where the verdicts (5 or less) differ."""
    kept, agreed, template = [], 0, judge_template(width)
    for s, j in zip(samples, judgements):
        problem = problem_from_prompt(s["prompt"], s["problem_id"])
        exact, working = exact_judgement(problem, s["completion"], width)
        found = judged_check(j["outputs"][0])
        if not exact or found is None:
            continue
        own = template.parse(j["outputs"][0])[0]
        if (own == 5) == (exact == 5):
            agreed += 1
            continue
        kept.append(Pair(f"eft:{s['problem_id']}/{s['index']}", found[0], working, found[1], float(exact), own).to_json())
    judged = agreed + len(kept)
    return stages.Filtered(kept, counts={"answers": len(samples), "judged": judged,
                                         "judge_error_rate": round(len(kept) / max(judged, 1), 5)})


def validation_rows(ctx: stages.RunContext, n: int) -> stages.Rows:
    """M1's validation rows: the worked solutions of the last `n` pool problems (no training
    row is one of them)."""
    width = ctx.task.width

    def load() -> list[dict[str, str]]:
        return [{"prompt": p.prompt, "completion": aligned_solution(p.meta["a"], p.meta["b"], width, operation(p))}
                for p in ctx.pool[-n:]]

    return stages.made_rows(load, ctx.data_fp, n, sources=("pool worked solutions",))


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
