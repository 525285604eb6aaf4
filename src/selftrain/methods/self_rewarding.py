"""Self-Rewarding Language Models: Yuan et al. 2024 (arXiv 2401.10020).

One model is both the actor and its own reward model:

    0. M0 -> M1: SFT on instruction data (IFT) and evaluation data (EFT: prompt, response,
       a judge's justification ending in "Score: N").
    for t = 1 .. T:
        1. Self-instruction creation: M_t writes new prompts, few-shot from the pool (8 shown).
        2. M_t samples N responses per new prompt (the paper: 4, T=0.7, top-p 0.9).
        3. M_t judges each response with the LLM-as-a-judge prompt, 3 times, averaged.
        4. Preference pairs: the highest-scored response against the lowest; ties dropped.
        5. DPO from M_t on the pairs -> M_{t+1}.
        6. Evaluate M_{t+1}: answer accuracy, and the judge's pairwise accuracy.

Run it:  `selftrain demo --method self-rewarding`  (the miniature on the embedded task), or
`selftrain run configs/self-rewarding.yaml` (a chat model). `self_rewarding.variant` chooses:
`miniature` (the tiny model on the embedded task, where both abilities are measured exactly)
or `chat` (any chat model in `model.name_or_path`, the paper's judge prompt word for word).
The section holds each step's settings by role: `sft` (M0 -> M1), `prompts` (step 1),
`responses` (step 2), `judge` (step 3), `min_chosen_score` (step 4), `dpo` (step 5).

The miniature (the embedded task with addition and subtraction, `task.arithmetic.operations`)
measures both abilities exactly: answer accuracy is the task's grader on the test set, greedy;
judge accuracy is how often the model's own greedy judgement scores the right answer of a
held-out pair (M1's own right and wrong answers to one test problem) above the wrong one.

The miniature's judge checks an answer by the inverse operation (`CheckJudge`): for
`0347+0085=` answered 432 it is asked `0432-0085=` and solves it as it solves any problem;
an additive rubric scores how far the check's result agrees with 347 (+1 a well-formed
answer, +1 the units digit, +1 the two lowest digits, +2 all digits; right answers 5, wrong
ones at most 3). Checking is then no harder than solving, the judge never sees the working
it judges, and a wrong answer passes only if the check errs into exactly the right number.

Deviations from the paper, each forced by the tiny model or chosen to measure:
- The paper's M0 is a pretrained model (Llama 2 70B). The miniature's M0 is the tiny model
  trained on the worked solutions alone (`pretrain`), its stand-in for pretraining; it
  cannot few-shot anything, so M1's SFT data also teaches the prompt-writing format (8 pool
  prompts, one per line, then a new one).
- The judge prompt is the check (the paper's 1,500-character prompt does not fit the tiny
  model's context), and the rubric is applied to the check's result by code rather than
  written out by the model: a tiny model taught to write the comparison itself did not
  learn to tell two digits apart within the budget (docs/self-rewarding.md). The model still
  does the judging work (the check), and the rubric keeps the paper's additive 0-5 form.
  For chat models, `verifiers.judge.ADDITIVE_5_POINT` is the paper's prompt word for word.
- EFT data are the model's own answers (M0's samples on pool problems), half right and half
  wrong, each with its exact worked check (from the task's grader), not human-ranked Open
  Assistant data.
- New prompts must be well-formed problems in range and never a test problem
  (contamination), and preference pairs that overlap an evaluation set are dropped before
  DPO (decontamination).
- A pair is kept only when its chosen response scored 5 on average and its rejected one at
  most 3 (`min_chosen_score`, `max_rejected_score`: the Iterative RPO condition, a right
  answer against a wrong one, as the judge sees them); the paper drops only ties.
- Steps per DPO iteration are fixed (`dpo.steps`, capped by `dpo.max_epochs`), not
  early-stopped. DPO may add an NLL term on the chosen response (`dpo.nll_weight`, Iterative
  RPO; 0 in the paper). The miniature's update is that NLL term alone (`dpo.loss_type: sft`,
  rejection-sampling fine-tuning on the self-chosen answers): on its model every contrastive
  loss, DPO + NLL, APO-zero and step-level pairs, lowered answer accuracy more than the NLL
  alone, even with perfect pairs (`benchmarks/dpo_arms.py`, docs/self-rewarding.md).
- Answers are evaluated greedily; the paper's AlpacaEval has no equivalent here.
- `controls` run beside the method from the same M1: `grader` (the exact check makes the
  pairs: the upper bound of a judge) and `sft` (M1's own data for the same steps). They are
  measurements, not part of the method.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from selftrain import stages
from selftrain.artifacts import RunDir, fingerprint, read_json, read_jsonl, write_json, write_jsonl
from selftrain.config import (
    ArithmeticConfig,
    DPOConfig,
    EvalConfig,
    Generation,
    ModelConfig,
    Sampling,
    TaskConfig,
    TaskRun,
    TinyModelConfig,
    TrainConfig,
    _Section,
)
from selftrain.errors import ConfigError
from selftrain.instructions import FEWSHOT_HEADER, PromptFilter, fewshot_prompt
from selftrain.methods import Method
from selftrain.records import Pair, Problem, Sample, Score
from selftrain.report import escape, line_chart, page, pct, table
from selftrain.samplers.base import SamplingParams
from selftrain.tasks.arithmetic import (
    apply,
    check_problem,
    check_solution,
    final_answer,
    operands,
    operation,
    rubric,
    shown_answer,
)
from selftrain.verifiers.judge import JudgeTemplate, LLMJudge


class PromptWriting(_Section):
    """Step 1: self-instruction creation."""

    n: int = Field(300, ge=1)
    """New prompts the model writes per iteration (after filtering)."""
    shots: int = Field(8, ge=1)
    """Pool prompts shown per request (the paper: 8)."""
    temperature: float = Field(1.0, ge=0.0)


class JudgeConfig(Sampling):
    """Step 3: LLM-as-a-judge."""

    samples: int = Field(3, ge=1)
    """Judgements per response, averaged (the paper: 3)."""
    max_new_tokens: int = Field(32, ge=1)
    finish: bool = False
    """Hand a judgement that ends without "Score:" back to the judge with `Score:` appended
    and read its most probable score on the scale (not in the paper; for small models that
    lose the format; see `LLMJudge.judgements`)."""
    pair_judge: Literal["self", "grader"] = "self"
    """Who scores the responses that make the preference pairs: the model itself (the
    method), or, in the miniature, the task's grader (a diagnostic: DPO with a perfect
    judge, to tell a weak judge from a weak update)."""
    eval_pairs: int = Field(400, ge=1)
    """Miniature: held-out response pairs (test problems, M1's samples, one right answer and
    one wrong) on which the judge's pairwise accuracy is measured at every iteration."""


class SelfRewardingSection(_Section):
    """Self-Rewarding Language Models (Yuan et al. 2024): the model makes prompts, answers
    them, judges its answers, and trains with DPO on its best against its worst answer."""

    variant: Literal["miniature", "chat"] = "miniature"
    """`miniature`: the tiny model on the embedded task; `chat`: the chat model in
    `model.name_or_path`."""
    iterations: int = Field(2, ge=1)
    """Self-rewarding iterations after M1: 2 gives M1 -> M2 -> M3, as in the paper."""
    sft: TrainConfig = TrainConfig(steps=300)
    """Miniature: M0 -> M1, SFT on IFT, prompt-writing and EFT examples."""
    pretrain: TrainConfig | None = None
    """Miniature: M0 is the tiny model first trained on the worked solutions alone with these
    settings, the stand-in for the paper's pretrained M0; None: M1 starts from the random
    model."""
    writing_size: int | None = Field(None, ge=1)
    """Miniature: prompt-writing examples in M1's data (None: as many as worked solutions)."""
    ift_repeats: int = Field(1, ge=1)
    """Miniature: times each instruction example (worked solution) appears in M1's data."""
    eft_size: int = Field(600, ge=0)
    """Miniature: judge examples (EFT) in M1's data: M0's own answers to pool problems, half
    right and half wrong, each with its exact judgement (`tasks.arithmetic.check_judgement`)."""
    prompts: PromptWriting = PromptWriting()
    responses: Generation = Generation(k=4, temperature=0.7, top_p=0.9)
    """Step 2: responses per new prompt (`k`; the paper: 4, T=0.7, top-p 0.9)."""
    judge: JudgeConfig = JudgeConfig()
    max_rejected_score: float | None = None
    """Step 4: keep a pair only if its rejected response scored at most this (e.g. 3: under
    the miniature's rubric a wrong answer scores at most 3, a right one whose check erred
    once in three at least 3.7); None keeps every untied pair."""
    min_chosen_score: float | None = None
    """Step 4: keep a pair only if its chosen response scored at least this (e.g. 5, as
    Iterative RPO pairs a right answer against a wrong one); None keeps every untied pair."""
    dpo: DPOConfig = DPOConfig()
    """Step 5: DPO from M_t (the paper: beta 0.1). The miniature trains with `loss_type: sft`,
    the NLL of the chosen alone: on its model every contrastive loss lowered answer accuracy,
    even on perfect pairs (`benchmarks/dpo_arms.py`, docs/self-rewarding.md)."""
    seed_prompts: str = "../shared/data/self_instruct/seed_tasks.jsonl"
    """Chat: JSON lines of prompts (field `prompt` or `instruction`, plus `instances[0].input`
    when present), the pool shown few-shot; the last `eval_prompts` are held out."""
    eval_prompts: int = Field(8, ge=1)
    """Chat: held-out prompts on which each model's greedy answers are judged."""
    controls: list[Literal["grader", "sft"]] = []
    """Miniature: controls run beside the method from the same M1, reported with it:
    `grader`: the same loop with the exact judge making the pairs (the upper bound of a
    judge); `sft`: M1 trained on for the same steps and batch size as each DPO iteration,
    on M1's own human data instead of self-made pairs (compute-matched SFT)."""


class SelfRewardingConfig(TaskRun):
    name: str = "self-rewarding"
    method: Literal["self-rewarding"] = "self-rewarding"
    self_rewarding: SelfRewardingSection = SelfRewardingSection()

    @model_validator(mode="after")
    def _check(self) -> SelfRewardingConfig:
        sec, named = self.self_rewarding, self.model.name_or_path is not None
        if sec.variant == "chat" and not named:
            raise ValueError("self_rewarding.variant chat needs a chat model in model.name_or_path")
        if sec.variant == "chat" and sec.judge.pair_judge != "self":
            raise ValueError("self_rewarding.judge.pair_judge grader needs the embedded task's grader (variant miniature)")
        if sec.variant == "miniature" and named:
            raise ValueError("self_rewarding.variant miniature trains the tiny model; for the model in "
                             "model.name_or_path set self_rewarding.variant: chat")
        if sec.variant == "miniature" and (self.task.name != "arithmetic" or sorted(self.task.arithmetic.operations) != ["+", "-"]):
            raise ValueError("the self-rewarding miniature runs on the embedded task with both operations "
                             "(task.arithmetic.operations: ['+', '-']): its judge checks an answer by the inverse one")
        if sec.variant == "chat" and sec.controls:
            raise ValueError("self_rewarding.controls need the embedded task's grader (variant miniature)")
        return self


def run(ctx: stages.RunContext) -> None:
    {"miniature": run_miniature, "chat": run_chat}[ctx.cfg.self_rewarding.variant](ctx)


def run_miniature(ctx: stages.RunContext) -> None:
    """The miniature, steps numbered as in the docstring."""
    sec = ctx.cfg.self_rewarding
    m1, m1_data, held_out = build_m1(ctx)
    iterate(ctx, "", m1, held_out, sec.judge.pair_judge)
    if "grader" in sec.controls and sec.judge.pair_judge != "grader":
        iterate(ctx, "grader-", m1, held_out, "grader")
    if "sft" in sec.controls:
        sft_control(ctx, m1, m1_data, held_out)


def build_m1(ctx: stages.RunContext) -> tuple[stages.Artifact, stages.Rows, stages.Artifact]:
    """Step 0: M0 (the tiny model trained on the worked solutions alone) -> M1 (SFT on IFT,
    prompt writing and EFT: M0's own answers, judged exactly), then M1 evaluated and the
    fixed held-out judge pairs made. Returns M1, its data and the pairs."""
    sec = ctx.cfg.self_rewarding
    m0 = stages.start_model(ctx)
    if sec.pretrain is not None:
        m0 = stages.sft(ctx, "m0", m0, stages.human_rows(ctx), sec.pretrain)
    k = max(2, -(-2 * sec.eft_size // max(len(ctx.pool), 1)))  # enough for half right, half wrong
    own = stages.generate(ctx, "eft", m0, ctx.pool, Generation(k=k, temperature=1.0, max_new_tokens=sec.responses.max_new_tokens))
    m1_data = m1_rows(ctx, own)
    m1 = stages.sft(ctx, "m1", m0, m1_data, sec.sft)
    held_out = held_out_pairs(ctx, m1)
    evaluate_both(ctx, "m1", m1, held_out)
    return m1, m1_data, held_out


def iterate(ctx: stages.RunContext, prefix: str, m1: stages.Artifact, held_out: stages.Artifact,
            pair_judge: Literal["self", "grader"]) -> None:
    """Iterations 1..T from M1; groups `<prefix>iter-NN`."""
    sec = ctx.cfg.self_rewarding
    policy = m1
    for t in range(1, sec.iterations + 1):
        it = f"{prefix}iter-{t:02d}"
        # 1. self-instruction creation: well-formed problems, never a test problem
        new = write_problems(ctx, it, policy)
        # 2. N responses per new prompt
        responses = stages.generate(ctx, it, policy, new, sec.responses, name="responses")
        # 3. M_t judges every response (3 judgements, averaged); the control: the exact check does
        scores = judge_responses(ctx, it, policy, new, responses, pair_judge)
        # 4. best against worst, ties dropped (and pairs overlapping an evaluation set: decontamination)
        pairs = stages.pairs(ctx, it, scores, sec.min_chosen_score, check=lambda made, new=new: truly_better(made, new),
                             max_rejected=sec.max_rejected_score)
        pairs = stages.decontaminate(ctx, it, pairs, ("prompt", "chosen", "rejected"))
        # 5. DPO from M_t -> M_{t+1}
        policy = stages.dpo(ctx, it, policy, pairs, sec.dpo)
        # 6. evaluate M_{t+1}: answer accuracy, and its judge's pairwise accuracy
        evaluate_both(ctx, it, policy, held_out)


def write_problems(ctx: stages.RunContext, group: str, policy: stages.Artifact) -> list[Problem]:
    """Step 1 of the miniature: `policy` writes `prompts.n` new problems, shown `prompts.shots`
    pool prompts at a time; a problem is kept when well-formed, in range, new and never a test
    problem."""
    sec, task = ctx.cfg.self_rewarding, ctx.task
    pool = [p.prompt for p in ctx.human + ctx.pool]
    keep = PromptFilter(pool, novelty_threshold=None, forbidden=[p.prompt for p in ctx.test],
                        check=lambda text: well_formed(text, task.width, task.cfg.operations), min_chars=1)
    written = stages.write_prompts(ctx, group, policy, pool, sec.prompts.n, sec.prompts.shots,
                                   SamplingParams(temperature=sec.prompts.temperature, max_new_tokens=2 * task.width + 4),
                                   keep, problem_from_prompt)
    return stages.load_problems(written)


def judge_responses(ctx: stages.RunContext, group: str, policy: stages.Artifact, problems: list[Problem],
                    responses: stages.Artifact, pair_judge: Literal["self", "grader"]) -> stages.Artifact:
    """Step 3 of the miniature: `policy` judges every response (`judge.samples` checks,
    averaged); with `pair_judge: grader`, the exact check in its place."""
    sec, width = ctx.cfg.self_rewarding, ctx.task.width
    if pair_judge == "grader":
        return stages.score(ctx, group, responses, problems, GraderAsJudge(width))
    return stages.judge(ctx, group, policy, problems, responses, judge_template(width), sec.judge.samples, sec.judge.params())


def sft_control(ctx: stages.RunContext, m1: stages.Artifact, rows: stages.Rows, held_out: stages.Artifact) -> None:
    """The compute-matched control: each iteration, SFT on M1's own data for as many steps
    as the method's iteration took, with its batch size and learning rate; groups
    `sft-iter-NN`."""
    sec = ctx.cfg.self_rewarding
    policy = m1
    for t in range(1, sec.iterations + 1):
        done = ctx.run.record(f"iter-{t:02d}/train")
        steps = done.info.get("steps") if done is not None else None
        if not steps:
            break  # the method's iteration has not trained (or had no pairs): nothing to match
        cfg = TrainConfig(**{**sec.dpo.model_dump(include=set(TrainConfig.model_fields)), "steps": steps, "max_epochs": None})
        policy = stages.sft(ctx, f"sft-iter-{t:02d}", policy, rows, cfg)
        evaluate_both(ctx, f"sft-iter-{t:02d}", policy, held_out)


def run_chat(ctx: stages.RunContext) -> None:
    """The method on a chat model (`model.name_or_path`: a folder, hub name or .gguf file).

    M1 is the given model (the paper's M1 is Llama 2 70B after SFT on IFT + EFT data from
    Open Assistant, which is not available offline: a deviation). Each model is evaluated
    on held-out prompts: its greedy answers scored by itself and by M1's judge (a fixed
    yardstick), and head to head against M1's answers, judged by M1 in both orders (a win
    counts only when both orders agree).
    """
    sec = ctx.cfg.self_rewarding
    chat = ctx.cfg.model.sampler.model_copy(update={"chat": True})
    pool, held_out = split_seed_prompts(sec)
    m1 = stages.start_model(ctx)
    chat_evaluate(ctx, "m1", m1, m1, held_out)

    policy = m1
    for t in range(1, sec.iterations + 1):
        it = f"iter-{t:02d}"
        # 1. self-instruction creation: 8 pool prompts shown, the model writes the next
        written = stages.write_prompts(ctx, it, policy, pool, sec.prompts.n, sec.prompts.shots,
                                       SamplingParams(temperature=sec.prompts.temperature, top_p=0.9, max_new_tokens=96),
                                       PromptFilter(pool, min_chars=10, max_chars=1000, forbidden=held_out),
                                       lambda text, pid: Problem(pid, text, ""), FEWSHOT_HEADER, numbered=True, sampler=chat)
        new = stages.load_problems(written)
        # 2. N responses per new prompt
        responses = stages.generate(ctx, it, policy, new, sec.responses, name="responses", sampler=chat)
        # 3. the same model judges every response with the paper's prompt (3 judgements, averaged)
        scores = stages.judge(ctx, it, policy, new, responses, "additive-5", sec.judge.samples, sec.judge.params(),
                              sec.judge.finish, sampler=chat)
        # 4. best against worst, ties and unreadable dropped (and pairs overlapping an evaluation set)
        pairs = stages.pairs(ctx, it, scores, sec.min_chosen_score, max_rejected=sec.max_rejected_score)
        pairs = stages.decontaminate(ctx, it, pairs, ("prompt", "chosen", "rejected"))
        # 5. DPO from M_t -> M_{t+1} on the chat-formatted pairs (LoRA with dpo.lora_r)
        policy = stages.dpo(ctx, it, policy, pairs, sec.dpo, row=stages.chat_rows)
        # 6. evaluate M_{t+1} on the held-out prompts
        chat_evaluate(ctx, it, policy, m1, held_out)


# --- the miniature's pieces -------------------------------------------------------------


def well_formed(text: str, width: int, operations: list[str]) -> bool:
    """A written prompt the task could hold: `dddd+dddd=` or `dddd-dddd=` over its columns,
    a subtraction's minuend at least its subtrahend, a sum within the columns."""
    parts = operands(text)
    if parts is None or len(text) != 2 * width + 2 or text[width] not in operations:
        return False
    a, op, b = parts
    return a >= b if op == "-" else a + b < 10**width


def problem_from_prompt(prompt: str, pid: str) -> Problem:
    a, op, b = operands(prompt)
    return Problem(id=pid, prompt=prompt, answer=str(apply(a, b, op)), bucket=str(max(len(str(a)), len(str(b)))),
                   meta={"a": a, "b": b, **({"op": op} if op != "+" else {})})


@dataclass(frozen=True)
class CheckTemplate(JudgeTemplate):
    """The miniature's judge prompt: the check a response's final answer calls for
    (`tasks.arithmetic.check_problem`); the judge is `CheckJudge`."""

    width: int = 4

    def format(self, prompt: str, response: str) -> str:
        return check_problem(prompt, response, self.width)

    def judge(self, sampler, samples=3, params=SamplingParams(), seed=0, finish=False) -> CheckJudge:
        return CheckJudge(sampler, self, samples, params, seed)


def judge_template(width: int) -> CheckTemplate:
    return CheckTemplate(f"arithmetic-check-{width}", "{response}", 0.0, 5.0, width)


class CheckJudge(LLMJudge):
    """The miniature's judge: the model solves the check a response's final answer calls for
    (for `a+b=` answered s, `s-b=`; for `a-b=` answered d, `d+b=`), as it solves any
    problem, `samples` times with the judge's sampling settings; each check is scored on the
    additive rubric by how far its answer agrees with `a` (`tasks.arithmetic.rubric`). It
    never sees the response's working. A response without an answer that fits the columns
    scores 0 unasked. A judgement's text is the check, the model's working and the score:
    `0432-0085=2-5-0=17 3-8-1=14 4-0-1=03 0-0-0=00 A:347 | Score: 5`."""

    template: CheckTemplate

    def judgements(self, problems: Sequence[Problem], responses: Sequence[str]) -> list[list[str]]:
        width = self.template.width
        asks = [(p, self.template.format(p.prompt, r)) for p, r in zip(problems, responses) for _ in range(self.samples)]
        asked = [i for i, (_, check) in enumerate(asks) if check != "?"]
        working = self.sampler.generate([asks[i][1] for i in asked], self.params, self.seed)
        outputs = ["no answer Score: 0"] * len(asks)
        for i, said in zip(asked, working):
            p, check = asks[i]
            outputs[i] = f"{check}{said} | Score: {rubric(final_answer(said), operands(p.prompt)[0], width)}"
        return [outputs[i * self.samples: (i + 1) * self.samples] for i in range(len(responses))]


def exact_judgement(p: Problem, completion: str, width: int) -> tuple[int, str]:
    """What a judge that never errs finds for `completion`: its score, and its check's
    worked solution ("" when the response has no answer to check)."""
    shown = shown_answer(completion, width)
    if shown == "?":
        return 0, ""
    working, result = check_solution(shown, p.meta["b"], operation(p), width)
    return rubric(str(result), p.meta["a"], width), working


def eft_rows(problems: list[Problem], samples: list[Sample], width: int, n: int, seed: int) -> list[dict[str, str]]:
    """Judge training examples (EFT) from a model's own answers: `n` of them, half right and
    half wrong (as far as the samples allow): the check each answer calls for, with its
    exact worked solution. For a right answer that is the inverse problem solved; for a
    wrong one, a check that fails (sometimes borrowing or carrying past the columns)."""
    by_id, template = {p.id: p for p in problems}, judge_template(width)
    right, wrong = [], []
    for s in samples:
        p = by_id[s.problem_id]
        score, working = exact_judgement(p, s.completion, width)
        if score:  # an answer that fits the columns (the judge is not asked about the rest)
            (right if score == 5 else wrong).append({"prompt": template.format(p.prompt, s.completion), "completion": working})
    rng = random.Random(seed)
    rng.shuffle(right)
    rng.shuffle(wrong)
    wrong = wrong[: n - min(n // 2, len(right))]
    rows = right[: n - len(wrong)] + wrong
    rng.shuffle(rows)
    return rows


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
    pool = [p.prompt for p in ctx.human + ctx.pool]

    def load() -> list[dict[str, str]]:
        ift = stages.human_rows(ctx).load() * sec.ift_repeats
        writing = prompt_writing_rows(pool, sec.prompts.shots, sec.writing_size or len(ctx.human), ctx.seed("writing"))
        eft = eft_rows(ctx.pool, stages.load_samples(own.path), ctx.task.width, sec.eft_size, ctx.seed("eft"))
        return ift + writing + eft

    return stages.Rows(fingerprint("m1-data", ctx.data_fp, own.fp, judge_template(ctx.task.width).name, sec.prompts.shots,
                                   sec.eft_size, sec.ift_repeats,
                                   sec.writing_size), load)


class GraderAsJudge:
    """The control `judge.pair_judge: grader`: the exact judgement's score (a perfect judge)."""

    def __init__(self, width: int):
        self.width = width

    def __call__(self, problems, completions) -> list[Score]:
        return [Score(float(exact_judgement(p, c, self.width)[0]), "grader: exact check") for p, c in zip(problems, completions)]


def truly_better(pairs: list[Pair], problems: list[Problem]) -> dict[str, Any]:
    """How many self-made pairs are right against wrong, by the task's grader."""
    by_id = {p.id: p for p in problems}

    def right(pid: str, text: str) -> bool:
        return final_answer(text) == by_id[pid].answer

    n = max(len(pairs), 1)
    return {"prompts": len(problems),
            "chosen_truly_right": round(sum(right(p.problem_id, p.chosen) for p in pairs) / n, 5),
            "rejected_truly_wrong": round(sum(not right(p.problem_id, p.rejected) for p in pairs) / n, 5)}


def held_out_pairs(ctx: stages.RunContext, m1: stages.Artifact) -> stages.Artifact:
    """Fixed held-out judge pairs: M1's answers to test problems (8 samples each at T = 1),
    one right and one wrong per problem where it has both -> RUN/judge-eval/pairs.jsonl."""
    sec = ctx.cfg.self_rewarding
    out = ctx.path("judge-eval", "pairs.jsonl")
    fp = fingerprint("judge-pairs", m1.fp, sec.judge.eval_pairs, sec.responses.max_new_tokens, ctx.cfg.seed)

    def work() -> dict[str, Any]:
        params = SamplingParams(temperature=1.0, max_new_tokens=sec.responses.max_new_tokens)
        samples = stages.sample_shards(ctx.sampler(m1), ctx.test, 8, params, ctx.path("judge-eval", "samples.jsonl"),
                                       ctx.seed("judge-eval"), desc="judge-eval samples", key=fp)
        by_id = {p.id: p for p in ctx.test}
        right: dict[str, str] = {}
        wrong: dict[str, str] = {}
        for s in samples:
            (right if final_answer(s.completion) == by_id[s.problem_id].answer else wrong).setdefault(s.problem_id, s.completion)
        rows = [{"id": pid, "prompt": by_id[pid].prompt, "better": right[pid], "worse": wrong[pid]}
                for pid in by_id if pid in right and pid in wrong]
        random.Random(ctx.cfg.seed).shuffle(rows)
        write_jsonl(out, rows[: sec.judge.eval_pairs])
        return {"pairs": min(len(rows), sec.judge.eval_pairs)}

    ctx.stage("judge-eval/pairs", fp, work)
    return stages.Artifact(out, fp)


def evaluate_both(ctx: stages.RunContext, group: str, model: stages.Artifact, held_out: stages.Artifact) -> None:
    """Answer accuracy on the test set, and the model's pairwise accuracy as a judge."""
    stages.evaluate(ctx, group, model)
    greedy = ctx.cfg.self_rewarding.judge.model_copy(update={"temperature": 0.0}).params()
    stages.evaluate_judge(ctx, group, model, held_out, judge_template(ctx.task.width), greedy)


# --- the chat variant's pieces ----------------------------------------------------------


def load_prompts(path: str | Path) -> list[str]:
    """Prompts from JSON lines: `prompt`, or `instruction` (+ the first instance's input)."""
    from selftrain.tasks.real import read_rows

    prompts = []
    for n, row in enumerate(read_rows(path), 1):
        text = row.get("prompt") or row.get("instruction")
        if not isinstance(text, str):
            raise ConfigError(f"{path}: row {n} has no prompt or instruction (self_rewarding.seed_prompts)")
        inputs = row.get("instances") or [{}]
        if isinstance(inputs[0], dict) and inputs[0].get("input"):
            text = f"{text}\n\n{inputs[0]['input']}"
        prompts.append(text.strip())
    return prompts


def split_seed_prompts(sec: SelfRewardingSection) -> tuple[list[str], list[str]]:
    """The pool shown few-shot, and the held-out prompts (the last `eval_prompts`)."""
    prompts = load_prompts(sec.seed_prompts)
    if len(prompts) < sec.prompts.shots + sec.eval_prompts:
        raise ConfigError(f"{sec.seed_prompts} has {len(prompts)} prompts; {sec.prompts.shots} shots and "
                          f"{sec.eval_prompts} held-out prompts need more")
    return prompts[: -sec.eval_prompts], prompts[-sec.eval_prompts:]


def _mean(scores: list[Score]) -> float | None:
    read = [s.value for s in scores if s.value is not None]
    return round(sum(read) / len(read), 4) if read else None


def chat_evaluate(ctx: stages.RunContext, group: str, model: stages.Artifact, m1: stages.Artifact, held_out: list[str]) -> None:
    """Greedy answers to the held-out prompts, scored by the model itself and by M1, and
    head to head against M1's -> RUN/<group>/answers.jsonl, chat_eval.json."""
    sec = ctx.cfg.self_rewarding
    chat = ctx.cfg.model.sampler.model_copy(update={"chat": True})
    fp = fingerprint("chat-eval", model.fp, held_out, sec.responses.max_new_tokens, sec.judge.max_new_tokens, sec.judge.finish,
                     ctx.cfg.seed)
    problems = [Problem(f"eval-{i}", p, "") for i, p in enumerate(held_out)]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=sec.judge.max_new_tokens)

    def work() -> dict[str, Any]:
        answers = ctx.sampler(model, chat).generate(held_out, SamplingParams(temperature=0.0, max_new_tokens=sec.responses.max_new_tokens),
                                                     ctx.cfg.seed)
        own_judge = LLMJudge(ctx.sampler(model, chat), "additive-5", 1, greedy, finish=sec.judge.finish)
        judgements = own_judge.judgements(problems, answers)
        own = own_judge.scores(judgements)
        info: dict[str, Any] = {"self_judged": _mean(own), "self_unreadable": sum(s.value is None for s in own),
                                "self_finished": own_judge.finished, "m1_judged": _mean(own)}
        if group != "m1":
            m1_answers = [r["answer"] for r in read_jsonl(ctx.path("m1", "answers.jsonl"))]
            fixed = LLMJudge(ctx.sampler(m1, chat), "additive-5", 1, greedy, finish=sec.judge.finish)
            info["m1_judged"] = _mean(fixed(problems, answers))
            wins = fixed.pairwise(problems, answers, m1_answers)
            info["vs_m1"] = {"wins": wins.count(0), "losses": wins.count(1), "undecided": wins.count(None)}
        write_jsonl(ctx.path(group, "answers.jsonl"), ({"prompt": p, "answer": a, "self_score": s.value, "judgement": j[0]}
                                                       for p, a, s, j in zip(held_out, answers, own, judgements)))
        write_json(ctx.path(group, "chat_eval.json"), info)
        return info

    ctx.stage(f"{group}/evaluate", fp, work)


# --- report -----------------------------------------------------------------------------


def _rows(run: RunDir, cfg: SelfRewardingConfig, prefix: str = "") -> list[dict[str, Any]]:
    """One row per model: M1, then each iteration of the loop whose groups start with `prefix`."""
    chat = cfg.self_rewarding.variant == "chat"
    rows = []
    for i, group in enumerate(["m1"] + [f"{prefix}iter-{t:02d}" for t in range(1, cfg.self_rewarding.iterations + 1)]):
        files = ["chat_eval.json"] if chat else ["eval.json", "judge_eval.json"]
        if not all(run.path(group, f).is_file() for f in files):
            continue
        row: dict[str, Any] = {"group": group, "label": f"M{i + 1}"}
        if chat:
            row.update(read_json(run.path(group, "chat_eval.json")))
        else:
            row.update({"test": read_json(run.path(group, "eval.json")), **read_json(run.path(group, "judge_eval.json"))})
        for stage in ("prompts", "judge", "pairs", "train"):
            rec = run.record(f"{group}/{stage}")
            if rec is not None:
                row[stage] = rec.info
        rows.append(row)
    return rows


CONTROLS = {"grader": ("grader-", "grader-judged"), "sft": ("sft-", "compute-matched SFT")}


def collect(run: RunDir, cfg: SelfRewardingConfig) -> dict[str, Any]:
    """metrics.json for a Self-Rewarding run: one row per model, M1 then each iteration; and
    the same for each control."""
    chat = cfg.self_rewarding.variant == "chat"
    extra: dict[str, Any] = {"chat": True, "model": cfg.model.name_or_path} if chat else {}
    controls = {name: _rows(run, cfg, CONTROLS[name][0]) for name in cfg.self_rewarding.controls}
    if controls:
        extra["controls"] = controls
    return {"method": "self-rewarding", **extra, "name": cfg.name, "seed": cfg.seed, "rows": _rows(run, cfg)}


def render(metrics: dict[str, Any]) -> str:
    """Both abilities by iteration, as the paper's tables: the actor and the judge."""
    title = f"selftrain: {escape(str(metrics['name']))} (seed {metrics['seed']})"
    if metrics.get("chat"):
        body = []
        for r in metrics["rows"]:
            vs, judged = r.get("vs_m1"), r.get("judge")
            body.append([r["label"], r.get("self_judged"), r.get("m1_judged"),
                         f"{vs['wins']} / {vs['losses']} / {vs['undecided']}" if vs else "",
                         r.get("prompts", {}).get("kept", ""),
                         f"{judged['judged']} ({judged['unreadable']} / {judged.get('finished', 0)})" if judged else "",
                         r.get("pairs", {}).get("pairs", ""), r.get("train", {}).get("reward_margin", "")])
        head = ["model", "self-judged score (0-5)", "M1-judged score (0-5)", "vs M1 (wins / losses / undecided)",
                "new prompts", "judgements (unreadable / finished)", "pairs", "DPO reward margin"]
        return page(title, f"<p>Self-Rewarding on {escape(str(metrics['model']))}: each model's greedy answers to held-out "
                    "prompts, scored with the paper's additive 5-point prompt by the model itself and by M1, and judged "
                    "head to head against M1's answers by M1 (a win counts when both orders agree).</p>" + table(head, body))
    rows, controls = metrics["rows"], metrics.get("controls", {})
    head = ["model", "answer accuracy %", "judge pairwise accuracy %", "judge ties %", "new prompts", "pairs",
            "self-chosen truly right %"]

    def line(label: str, r: dict[str, Any]) -> list[Any]:
        return [label, pct(r["test"]["accuracy"]), pct(r["judge_accuracy"]), pct(r["judge_ties"]),
                r.get("prompts", {}).get("kept", ""), r.get("pairs", {}).get("pairs", ""),
                pct(r.get("pairs", {}).get("chosen_truly_right"))]

    body = [line(r["label"], r) for r in rows]
    for name, got in controls.items():
        body += [line(f"{r['label']} ({CONTROLS[name][1]})", r) for r in got[1:]]
    series = [("answer accuracy", [r["test"]["accuracy"] for r in rows], "#1f77b4"),
              ("judge accuracy", [r["judge_accuracy"] for r in rows], "#d62728"),
              ("self-chosen truly right", [rows[0]["test"]["accuracy"]] + [r.get("pairs", {}).get("chosen_truly_right", 0.0)
                                                                            for r in rows[1:]], "#2ca02c")]
    colours = {"grader": ("#9467bd", "#e377c2"), "sft": ("#8c564b", "#7f7f7f")}
    for name, got in controls.items():
        if len(got) == len(rows):
            series.append((f"answer, {CONTROLS[name][1]}", [r["test"]["accuracy"] for r in got], colours[name][0]))
            series.append((f"judge, {CONTROLS[name][1]}", [r["judge_accuracy"] for r in got], colours[name][1]))
    chart = line_chart("Both abilities by model (M1 = SFT, then one per iteration)", list(range(1, len(rows) + 1)), series,
                       x_label="model M1, M2, ...")
    return page(title, f"""<p>Self-Rewarding: answer accuracy is greedy decoding on the held-out test set, graded exactly;
judge accuracy is how often the model's own greedy judgement scores the right response of a
held-out pair (one right, one wrong answer by M1 to a test problem) higher. "Self-chosen truly right":
of the pairs the model built from its own judgements, how many chosen answers the grader finds right
(the chart's first point of that line is M1's accuracy, for scale). Controls from the same M1: the
same loop with the task's exact check making the pairs (a perfect judge), and SFT on M1's own data
for the same steps (compute-matched).</p>
{table(head, body)}
<div class="charts">{chart}</div>""")


def summary(metrics: dict[str, Any]) -> list[str]:
    if metrics.get("chat"):
        return [f"{r['label']:<4} self-judged {r.get('self_judged')}  M1-judged {r.get('m1_judged')}  vs M1 {r.get('vs_m1')}"
                for r in metrics["rows"]]

    def line(label: str, r: dict[str, Any]) -> str:
        chosen = r.get("pairs", {}).get("chosen_truly_right")
        return (f"{label:<32} answer accuracy {r['test']['accuracy'] * 100:5.1f}%   judge pairwise accuracy "
                f"{r['judge_accuracy'] * 100:5.1f}%" + (f"   self-chosen truly right {chosen * 100:5.1f}%" if chosen is not None else ""))

    out = [line(r["label"], r) for r in metrics["rows"]]
    for name, got in metrics.get("controls", {}).items():
        out += [line(f"{r['label']} ({CONTROLS[name][1]})", r) for r in got[1:]]
    return out


def demo_config(seed: int = 0) -> SelfRewardingConfig:
    """The Self-Rewarding miniature: `selftrain demo --method self-rewarding`."""
    return SelfRewardingConfig(
        name="arithmetic-self-rewarding",
        seed=seed,
        task=TaskConfig(arithmetic=ArithmeticConfig(operations=["+", "-"], human_size=1000,
                                                    human_digits={1: 0.1, 2: 0.3, 3: 0.3, 4: 0.3}, test_per_bucket=150)),
        model=ModelConfig(tiny=TinyModelConfig(max_length=160)),
        self_rewarding=SelfRewardingSection(
            pretrain=TrainConfig(steps=300), sft=TrainConfig(steps=300, learning_rate=5e-4), writing_size=100,
            eft_size=1000, prompts=PromptWriting(n=1000), judge=JudgeConfig(max_new_tokens=64), min_chosen_score=5.0, max_rejected_score=3.0,
            dpo=DPOConfig(steps=40, max_epochs=4, batch_size=64, learning_rate=1e-4, warmup_steps=5, logging_steps=10,
                          loss_type="sft"),
            controls=["grader", "sft"]),
        eval=EvalConfig(k=1, temperature=1.0),
    )


def _needs(cfg: SelfRewardingConfig) -> list[tuple[str, Any, set[str]]]:
    finish = {"continue"} if cfg.self_rewarding.judge.finish else set()
    return [("model.sampler", cfg.model.sampler, {"local"} | finish)]


_OLD = "self_rewarding."
MOVED = {
    "sampling.batch_size": "model.sampler.batch_size", "sampling.shard_size": "self_rewarding.responses.shard_size",
    "sft": "self_rewarding.sft", "train": "self_rewarding.dpo",
    **{_OLD + old: _OLD + new for old, new in {
        "beta": "dpo.beta", "nll_weight": "dpo.nll_weight", "new_prompts": "prompts.n", "shots": "prompts.shots",
        "prompt_temperature": "prompts.temperature", "responses_per_prompt": "responses.k",
        "temperature": "responses.temperature", "top_p": "responses.top_p", "max_new_tokens": "responses.max_new_tokens",
        "judge_samples": "judge.samples", "judge_temperature": "judge.temperature",
        "judge_max_new_tokens": "judge.max_new_tokens", "judge_finish": "judge.finish", "pair_judge": "judge.pair_judge",
        "judge_eval_pairs": "judge.eval_pairs", "pretrain_steps": "pretrain.steps"}.items()},
    "self_rewarding.eft_format": "",
}

METHOD = Method("self-rewarding", SelfRewardingConfig, run, collect, render, summary, needs=_needs, moved=MOVED,
                demo=demo_config)
