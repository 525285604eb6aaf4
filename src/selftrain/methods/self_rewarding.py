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

The miniature (embedded arithmetic task) measures both abilities exactly: answer accuracy
is the task's grader on the test set; judge accuracy is how often the model's own greedy
judgement scores the better of two held-out responses higher, "better" meaning a higher
score from the grader (`tasks.arithmetic.judge_score`).

Deviations from the paper, each forced by the tiny model or chosen to measure:
- The paper's M0 is a pretrained model (Llama 2 70B). The miniature's M0 is the tiny model
  trained on the worked solutions alone (`pretrain_steps`), its stand-in for pretraining;
  it cannot few-shot anything, so M1's SFT data also teaches the prompt-writing format
  (8 pool prompts, one per line, then a new one).
- The judge prompt is `tasks.arithmetic.JUDGE_TEMPLATE_TEXT` (`J:`, the solution, the
  problem), since the paper's 1,500-character prompt does not fit the tiny model's context;
  the judgement keeps the paper's form and scale (a justification ending in `Score: N`, 0-5)
  and the same parser reads it; its justification is the judge's own worked solution and
  where the response departs from it (`eft_format: working`). For chat models,
  `verifiers.judge.ADDITIVE_5_POINT` is the paper's prompt word for word.
- EFT data are made from the task's grader (right solutions, and solutions with one or two
  mistakes, each with the grader's judgement), not from human-ranked Open Assistant data.
- New prompts must be well-formed problems and never a test problem (contamination), and
  preference pairs that overlap an evaluation set are dropped before DPO (decontamination).
- Steps per DPO iteration are fixed (`dpo.steps`), not early-stopped; the miniature adds
  an NLL term on the chosen response (`dpo.nll_weight`, Iterative RPO), 0 in the paper.
- `judge.pair_judge: grader` replaces the self-judgement by the task's grader: a diagnostic that
  tells a weak judge from a weak DPO step, not part of the method.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from selftrain import stages
from selftrain.artifacts import RunDir, fingerprint, read_json, read_jsonl, write_json, write_jsonl
from selftrain.config import (
    DPOConfig,
    EvalConfig,
    Generation,
    ModelConfig,
    Sampling,
    TaskRun,
    TinyModelConfig,
    TrainConfig,
    _Section,
)
from selftrain.errors import ConfigError
from selftrain.instructions import FEWSHOT_HEADER, PromptFilter, fewshot_prompt
from selftrain.methods import Method
from selftrain.records import Pair, Problem, Score
from selftrain.report import escape, line_chart, page, pct, table
from selftrain.samplers.base import SamplingParams
from selftrain.tasks.arithmetic import JUDGE_TEMPLATE_TEXT, aligned_solution, corrupt_solution, judge_score, judge_target
from selftrain.verifiers.judge import JudgeTemplate, LLMJudge

JUDGE = JudgeTemplate("arithmetic", JUDGE_TEMPLATE_TEXT, 0.0, 5.0)


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
    eval_pairs: int = Field(200, ge=1)
    """Miniature: held-out response pairs (test problems, M1's samples, unequal grader
    scores) on which the judge's pairwise accuracy is measured at every iteration."""


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
    pretrain_steps: int = Field(0, ge=0)
    """Miniature: M0 is the tiny model first trained on the worked solutions alone for this
    many steps (`sft` settings otherwise), the stand-in for the paper's pretrained M0; 0: M1
    starts from the random model."""
    writing_size: int | None = Field(None, ge=1)
    """Miniature: prompt-writing examples in M1's data (None: as many as worked solutions)."""
    ift_repeats: int = Field(1, ge=1)
    """Miniature: times each instruction example (worked solution) appears in M1's data."""
    eft_size: int = Field(600, ge=0)
    """Miniature: judge examples (EFT) in M1's data, 40% right solutions and the rest with
    one or two mistakes, judged by the task's grader."""
    eft_format: Literal["working", "verdict"] = "working"
    """Miniature: `working` solves the problem before the verdict (`tasks.arithmetic.judge_target`),
    `verdict` states it at once (`judge_score`)."""
    prompts: PromptWriting = PromptWriting()
    responses: Generation = Generation(k=4, temperature=0.7, top_p=0.9)
    """Step 2: responses per new prompt (`k`; the paper: 4, T=0.7, top-p 0.9)."""
    judge: JudgeConfig = JudgeConfig()
    min_chosen_score: float | None = None
    """Step 4: keep a pair only if its chosen response scored at least this (e.g. 5, as
    Iterative RPO pairs a right answer against a wrong one); None keeps every untied pair."""
    dpo: DPOConfig = DPOConfig()
    """Step 5: DPO from M_t (the paper: beta 0.1)."""
    seed_prompts: str = "../shared/data/self_instruct/seed_tasks.jsonl"
    """Chat: JSON lines of prompts (field `prompt` or `instruction`, plus `instances[0].input`
    when present), the pool shown few-shot; the last `eval_prompts` are held out."""
    eval_prompts: int = Field(8, ge=1)
    """Chat: held-out prompts on which each model's greedy answers are judged."""


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
        if sec.variant == "miniature" and (self.task.name != "arithmetic" or self.task.arithmetic.layout != "aligned"):
            raise ValueError("the self-rewarding miniature runs on the embedded task (task.arithmetic, aligned layout)")
        return self


def run(ctx: stages.RunContext) -> None:
    {"miniature": run_miniature, "chat": run_chat}[ctx.cfg.self_rewarding.variant](ctx)


def run_miniature(ctx: stages.RunContext) -> None:
    """The miniature, steps numbered as in the docstring."""
    sec, width = ctx.cfg.self_rewarding, ctx.task.width
    pool = [p.prompt for p in ctx.human + ctx.pool]

    # 0. M0 (the tiny model, trained on the worked solutions alone) -> M1 (SFT on IFT + EFT)
    m0 = stages.start_model(ctx)
    if sec.pretrain_steps:
        m0 = stages.sft(ctx, "m0", m0, stages.human_rows(ctx), sec.sft.model_copy(update={"steps": sec.pretrain_steps}))
    m1 = stages.sft(ctx, "m1", m0, m1_rows(ctx, width), sec.sft)
    held_out = held_out_pairs(ctx, m1, width)
    evaluate_both(ctx, "m1", m1, held_out)

    policy = m1
    for t in range(1, sec.iterations + 1):
        it = f"iter-{t:02d}"
        # 1. self-instruction creation: well-formed problems, never a test problem
        keep = PromptFilter(pool, novelty_threshold=None, forbidden=[p.prompt for p in ctx.test],
                            check=re.compile(rf"\d{{{width}}}\+\d{{{width}}}=").fullmatch, min_chars=1)
        written = stages.write_prompts(ctx, it, policy, pool, sec.prompts.n, sec.prompts.shots,
                                       SamplingParams(temperature=sec.prompts.temperature, max_new_tokens=2 * width + 4),
                                       keep, problem_from_prompt)
        new = stages.load_problems(written)
        # 2. N responses per new prompt
        responses = stages.generate(ctx, it, policy, new, sec.responses, name="responses")
        # 3. M_t judges every response (3 judgements, averaged); the diagnostic: the grader does
        if sec.judge.pair_judge == "grader":
            scores = stages.score(ctx, it, responses, new, GraderAsJudge(width))
        else:
            scores = stages.judge(ctx, it, policy, new, responses, JUDGE, sec.judge.samples, sec.judge.params())
        # 4. best against worst, ties dropped (and pairs overlapping an evaluation set: decontamination)
        pairs = stages.pairs(ctx, it, scores, sec.min_chosen_score, check=lambda made, new=new: truly_better(made, new, width))
        pairs = stages.decontaminate(ctx, it, pairs, ("prompt", "chosen", "rejected"))
        # 5. DPO from M_t -> M_{t+1}
        policy = stages.dpo(ctx, it, policy, pairs, sec.dpo)
        # 6. evaluate M_{t+1}: answer accuracy, and its judge's pairwise accuracy
        evaluate_both(ctx, it, policy, held_out)


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
        pairs = stages.pairs(ctx, it, scores, sec.min_chosen_score)
        pairs = stages.decontaminate(ctx, it, pairs, ("prompt", "chosen", "rejected"))
        # 5. DPO from M_t -> M_{t+1} on the chat-formatted pairs (LoRA with dpo.lora_r)
        policy = stages.dpo(ctx, it, policy, pairs, sec.dpo, row=stages.chat_rows)
        # 6. evaluate M_{t+1} on the held-out prompts
        chat_evaluate(ctx, it, policy, m1, held_out)


# --- the miniature's pieces -------------------------------------------------------------


def problem_from_prompt(prompt: str, pid: str) -> Problem:
    a, b = (int(x) for x in prompt[:-1].split("+"))
    return Problem(id=pid, prompt=prompt, answer=str(a + b), bucket=str(max(len(str(a)), len(str(b)))), meta={"a": a, "b": b})


def eft_rows(problems: list[Problem], width: int, n: int, seed: int, working: bool = True) -> list[dict[str, str]]:
    """Judge training examples: 40% right solutions, the rest with one or two mistakes, each
    with the grader's judgement as the completion (with `working`: the judge's own solution
    first)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        p = problems[i % len(problems)]
        a, b = p.meta["a"], p.meta["b"]
        response = aligned_solution(a, b, width) if rng.random() < 0.4 else corrupt_solution(a, b, width, rng, rng.randint(1, 2))
        target = judge_target(a, b, response, width) if working else judge_score(a, b, response, width)[1]
        rows.append({"prompt": JUDGE.format(p.prompt, response), "completion": target if working else " " + target})
    return rows


def prompt_writing_rows(prompts: list[str], shots: int, n: int, seed: int) -> list[dict[str, str]]:
    """The prompt-writing format for M1 (a deviation: M0 here cannot few-shot)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        chosen = rng.sample(prompts, shots + 1)
        rows.append({"prompt": fewshot_prompt(chosen[:shots], header="", numbered=False), "completion": chosen[shots]})
    return rows


def m1_rows(ctx: stages.RunContext, width: int) -> stages.Rows:
    """M1's data: IFT (worked solutions), prompt writing, and EFT (judgements)."""
    sec = ctx.cfg.self_rewarding
    pool = [p.prompt for p in ctx.human + ctx.pool]

    def load() -> list[dict[str, str]]:
        ift = stages.human_rows(ctx).load() * sec.ift_repeats
        writing = prompt_writing_rows(pool, sec.prompts.shots, sec.writing_size or len(ctx.human), ctx.seed("writing"))
        eft = eft_rows(ctx.human, width, sec.eft_size, ctx.seed("eft"), sec.eft_format == "working")
        return ift + writing + eft

    return stages.Rows(fingerprint("m1-data", ctx.data_fp, sec.prompts.shots, sec.eft_size, sec.eft_format, sec.ift_repeats,
                                   sec.writing_size), load)


class GraderAsJudge:
    """The diagnostic `judge.pair_judge: grader`: the task's partial-credit grader scores 0-5."""

    def __init__(self, width: int):
        self.width = width

    def __call__(self, problems, completions) -> list[Score]:
        graded = [judge_score(p.meta["a"], p.meta["b"], c, self.width) for p, c in zip(problems, completions)]
        return [Score(float(v), f"grader: {why}") for v, why in graded]


def truly_better(pairs: list[Pair], problems: list[Problem], width: int) -> dict[str, Any]:
    """How many self-made pairs the grader agrees with."""
    by_id = {p.id: p for p in problems}

    def graded(pid: str, text: str) -> int:
        return judge_score(by_id[pid].meta["a"], by_id[pid].meta["b"], text, width)[0]

    agree = sum(graded(p.problem_id, p.chosen) > graded(p.problem_id, p.rejected) for p in pairs)
    return {"prompts": len(problems), "chosen_truly_better": round(agree / max(len(pairs), 1), 5)}


def held_out_pairs(ctx: stages.RunContext, m1: stages.Artifact, width: int) -> stages.Artifact:
    """Fixed held-out judge pairs: M1's samples on test problems, two with unequal grader
    scores per problem -> RUN/judge-eval/pairs.jsonl."""
    sec = ctx.cfg.self_rewarding
    out = ctx.path("judge-eval", "pairs.jsonl")
    fp = fingerprint("judge-pairs", m1.fp, sec.judge.eval_pairs, sec.responses.max_new_tokens, ctx.cfg.seed)

    def work() -> dict[str, Any]:
        params = SamplingParams(temperature=1.0, max_new_tokens=sec.responses.max_new_tokens)
        samples = stages.sample_shards(ctx.sampler(m1), ctx.test, 4, params, ctx.path("judge-eval", "samples.jsonl"),
                                       ctx.seed("judge-eval"), desc="judge-eval samples", key=fp)
        by_id = {p.id: p for p in ctx.test}
        graded: dict[str, list[tuple[int, str]]] = {}
        for s in samples:
            p = by_id[s.problem_id]
            graded.setdefault(p.id, []).append((judge_score(p.meta["a"], p.meta["b"], s.completion, width)[0], s.completion))
        rows = [{"id": pid, "prompt": by_id[pid].prompt, "better": max(got)[1], "worse": min(got)[1],
                 "scores": [max(got)[0], min(got)[0]]} for pid, got in graded.items() if max(got)[0] > min(got)[0]]
        random.Random(ctx.cfg.seed).shuffle(rows)
        write_jsonl(out, rows[: sec.judge.eval_pairs])
        return {"pairs": min(len(rows), sec.judge.eval_pairs)}

    ctx.stage("judge-eval/pairs", fp, work)
    return stages.Artifact(out, fp)


def evaluate_both(ctx: stages.RunContext, group: str, model: stages.Artifact, held_out: stages.Artifact) -> None:
    """Answer accuracy on the test set, and the model's pairwise accuracy as a judge."""
    stages.evaluate(ctx, group, model)
    greedy = ctx.cfg.self_rewarding.judge.model_copy(update={"temperature": 0.0}).params()
    stages.evaluate_judge(ctx, group, model, held_out, JUDGE, greedy)


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


def collect(run: RunDir, cfg: SelfRewardingConfig) -> dict[str, Any]:
    """metrics.json for a Self-Rewarding run: one row per model, M1 then each iteration."""
    chat = cfg.self_rewarding.variant == "chat"
    rows = []
    for i, group in enumerate(["m1"] + [f"iter-{t:02d}" for t in range(1, cfg.self_rewarding.iterations + 1)]):
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
    extra = {"chat": True, "model": cfg.model.name_or_path} if chat else {}
    return {"method": "self-rewarding", **extra, "name": cfg.name, "seed": cfg.seed, "rows": rows}


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
    rows = metrics["rows"]
    head = ["model", "answer accuracy %", "judge pairwise accuracy %", "judge ties %", "new prompts", "pairs",
            "chosen truly better %"]
    body = [[r["label"], pct(r["test"]["accuracy"]), pct(r["judge_accuracy"]), pct(r["judge_ties"]),
             r.get("prompts", {}).get("kept", ""), r.get("pairs", {}).get("pairs", ""),
             pct(r.get("pairs", {}).get("chosen_truly_better"))] for r in rows]
    chart = line_chart("Both abilities by model (M1 = SFT, then one per iteration)", list(range(1, len(rows) + 1)), [
        ("answer accuracy", [r["test"]["accuracy"] for r in rows], "#1f77b4"),
        ("judge accuracy", [r["judge_accuracy"] for r in rows], "#d62728"),
    ], x_label="model M1, M2, ...")
    return page(title, f"""<p>Self-Rewarding: answer accuracy is greedy decoding on the held-out test set, graded exactly;
judge accuracy is how often the model's own greedy judgement scores the better response of a
held-out pair higher (better: by the task's grader). "Chosen truly better": of the pairs the
model built from its own judgements, how many the grader agrees with.</p>
{table(head, body)}
<div class="charts">{chart}</div>""")


def summary(metrics: dict[str, Any]) -> list[str]:
    if metrics.get("chat"):
        return [f"{r['label']:<4} self-judged {r.get('self_judged')}  M1-judged {r.get('m1_judged')}  vs M1 {r.get('vs_m1')}"
                for r in metrics["rows"]]
    return [f"{r['label']:<4} answer accuracy {r['test']['accuracy'] * 100:5.1f}%   "
            f"judge pairwise accuracy {r['judge_accuracy'] * 100:5.1f}%" for r in metrics["rows"]]


def demo_config(seed: int = 0) -> SelfRewardingConfig:
    """The Self-Rewarding miniature: `selftrain demo --method self-rewarding`."""
    return SelfRewardingConfig(
        name="arithmetic-self-rewarding",
        seed=seed,
        # GPT-2's own dropout and activation, as the documented numbers were measured.
        model=ModelConfig(tiny=TinyModelConfig(max_length=160, dropout=0.1, activation="gelu_new")),
        self_rewarding=SelfRewardingSection(
            sft=TrainConfig(steps=200), pretrain_steps=300, writing_size=100, eft_size=400,
            judge=JudgeConfig(max_new_tokens=80),
            dpo=DPOConfig(steps=40, batch_size=32, learning_rate=5e-5, warmup_steps=5, logging_steps=20, nll_weight=1.0)),
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
        "judge_eval_pairs": "judge.eval_pairs"}.items()},
}

METHOD = Method("self-rewarding", SelfRewardingConfig, run, collect, render, summary, needs=_needs, moved=MOVED,
                demo=demo_config)
