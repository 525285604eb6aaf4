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

Run it:  `selftrain demo --method self-rewarding`  (the miniature on the embedded task).

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
- New prompts must be well-formed problems and never a test problem (contamination).
- Steps per DPO iteration are fixed (`train.steps`), not early-stopped; the miniature adds
  an NLL term on the chosen response (`nll_weight`, Iterative RPO), 0 in the paper.
- `pair_judge: grader` replaces the self-judgement by the task's grader: a diagnostic that
  tells a weak judge from a weak DPO step, not part of the method.
"""

from __future__ import annotations

import logging
import random
import re
import time
from pathlib import Path
from typing import Any

from selftrain import stages
from selftrain.artifacts import RunDir, atomic_write_text, derive_seed, fingerprint, read_jsonl, write_json, write_jsonl
from selftrain.config import RunConfig
from selftrain.errors import ConfigError
from selftrain.evaluation import evaluate
from selftrain.instructions import PromptFilter, create_prompts
from selftrain.models import set_torch_threads
from selftrain.records import Pair, Problem, Score
from selftrain.samplers.base import SamplingParams
from selftrain.selection import best_vs_worst
from selftrain.tasks import build_task
from selftrain.tasks.arithmetic import (
    JUDGE_TEMPLATE_TEXT,
    ArithmeticTask,
    aligned_solution,
    corrupt_solution,
    judge_score,
    judge_target,
)
from selftrain.training.dpo import train_dpo
from selftrain.training.sft import train_sft
from selftrain.training.tiny import save_tiny
from selftrain.verifiers.judge import JudgeTemplate, LLMJudge

log = logging.getLogger("selftrain")

JUDGE = JudgeTemplate("arithmetic", JUDGE_TEMPLATE_TEXT, 0.0, 5.0)


def _check_config(cfg: RunConfig) -> None:
    if cfg.task.name != "arithmetic" or cfg.task.arithmetic.layout != "aligned":
        raise ConfigError("the self-rewarding miniature runs on the embedded task (task.arithmetic, aligned layout); "
                          "set model.name_or_path to a chat model for the general method")


def _problem_from_prompt(prompt: str, width: int, pid: str) -> Problem:
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
    from selftrain.instructions import fewshot_prompt

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        chosen = rng.sample(prompts, shots + 1)
        rows.append({"prompt": fewshot_prompt(chosen[:shots], header="", numbered=False), "completion": chosen[shots]})
    return rows


def judge_accuracy(judge: LLMJudge, pairs: list[dict[str, Any]]) -> dict[str, float]:
    """How often the judge scores the better response of each held-out pair higher."""
    problems = [Problem(p["id"], p["prompt"], "") for p in pairs for _ in (0, 1)]
    responses = [r for p in pairs for r in (p["better"], p["worse"])]
    scores = judge(problems, responses)
    right = ties = unread = 0
    for i in range(len(pairs)):
        hi, lo = scores[2 * i].value, scores[2 * i + 1].value
        if hi is None or lo is None:
            unread += 1
        elif hi > lo:
            right += 1
        elif hi == lo:
            ties += 1
    n = max(len(pairs), 1)
    return {"judge_accuracy": round(right / n, 5), "judge_ties": round(ties / n, 5), "judge_unreadable": round(unread / n, 5)}


def run_self_rewarding(cfg: RunConfig, out: str | Path) -> dict[str, Any]:
    """Run (or resume) Self-Rewarding with `cfg` in the folder `out`; returns the metrics."""
    from selftrain.report import publish

    if cfg.model.name_or_path is not None:
        return run_self_rewarding_chat(cfg, out)
    _check_config(cfg)
    sr = cfg.self_rewarding
    run = RunDir(out)
    with run.lock():
        t_start = time.perf_counter()
        threads = set_torch_threads(cfg.model.torch_threads)
        log.info(f"run folder {run.root} | torch threads {threads}")
        atomic_write_text(run.path("config.yaml"), cfg.to_yaml())
        task = build_task(cfg.task)
        assert isinstance(task, ArithmeticTask)
        width = task.width
        human, pool, test = task.human(), task.pool(), task.test()
        grader = task.grader()
        data_fp = fingerprint(task.name, [p.to_json() for split in (human, pool, test) for p in split])
        models = stages.ModelCache(cfg.sampling.batch_size)
        max_len = cfg.model.tiny.max_length
        pool_prompts = [p.prompt for p in human + pool]
        judge_params = SamplingParams(temperature=sr.judge_temperature, max_new_tokens=sr.judge_max_new_tokens)
        greedy_judge = SamplingParams(temperature=0.0, max_new_tokens=sr.judge_max_new_tokens)

        # M0: the tiny model as built
        init = run.path("init", "model")
        init_fp = fingerprint("tiny", cfg.model.tiny.model_dump(), cfg.seed)
        run.stage("init/build", init_fp, lambda: {"parameters": save_tiny(init, cfg.model.tiny, cfg.seed)}, log.info)

        ift_rows = lambda: stages.sft_rows([(p.prompt, p.solution) for p in human])  # noqa: E731

        # M0: with pretrain_steps, the tiny model trained on worked solutions alone first
        if sr.pretrain_steps:
            m0 = run.path("m0", "model")
            m0_fp = fingerprint("m0", init_fp, data_fp, sr.pretrain_steps, cfg.sft.model_dump(), cfg.seed)
            pretrain = cfg.sft.model_copy(update={"steps": sr.pretrain_steps})
            run.stage("m0/train", m0_fp, lambda: train_sft(init, ift_rows(), pretrain, m0, derive_seed(cfg.seed, "m0"), max_len), log.info)
            init, init_fp = m0, m0_fp

        # M0 -> M1: SFT on IFT (worked solutions), prompt writing, and EFT (judgements)
        def m1_rows() -> list[dict[str, str]]:
            ift = ift_rows() * sr.ift_repeats
            writing = prompt_writing_rows(pool_prompts, sr.shots, sr.writing_size or len(human), derive_seed(cfg.seed, "writing"))
            eft = eft_rows(human, width, sr.eft_size, derive_seed(cfg.seed, "eft"), sr.eft_format == "working")
            return ift + writing + eft

        m1 = run.path("m1", "model")
        m1_fp = fingerprint("m1", init_fp, data_fp, sr.shots, sr.eft_size, sr.eft_format, sr.ift_repeats, sr.writing_size,
                            cfg.sft.model_dump(), cfg.seed)
        run.stage("m1/train", m1_fp, lambda: train_sft(init, m1_rows(), cfg.sft, m1, derive_seed(cfg.seed, "m1"), max_len), log.info)

        # held-out judge pairs: M1's samples on test problems, two with unequal grader scores
        pairs_path = run.path("judge-eval", "pairs.jsonl")
        pairs_fp = fingerprint("judge-pairs", m1_fp, sr.judge_eval_pairs, cfg.seed)

        def make_judge_pairs() -> dict[str, Any]:
            params = SamplingParams(temperature=1.0, max_new_tokens=sr.max_new_tokens)
            samples = stages.generate(models.sampler(m1), test, 4, params, run.path("judge-eval", "samples.jsonl"),
                                      derive_seed(cfg.seed, "judge-eval"), desc="judge-eval samples", key=pairs_fp)
            by_id = {p.id: p for p in test}
            graded: dict[str, list[tuple[int, str]]] = {}
            for s in samples:
                p = by_id[s.problem_id]
                graded.setdefault(p.id, []).append((judge_score(p.meta["a"], p.meta["b"], s.completion, width)[0], s.completion))
            rows = []
            for pid, got in graded.items():
                best, worst = max(got), min(got)
                if best[0] > worst[0]:
                    rows.append({"id": pid, "prompt": by_id[pid].prompt, "better": best[1], "worse": worst[1],
                                 "scores": [best[0], worst[0]]})
            random.Random(cfg.seed).shuffle(rows)
            write_jsonl(pairs_path, rows[: sr.judge_eval_pairs])
            return {"pairs": min(len(rows), sr.judge_eval_pairs)}

        run.stage("judge-eval/pairs", pairs_fp, make_judge_pairs, log.info)

        def evaluate_stage(group: str, model: Path, model_fp: str) -> None:
            fp = fingerprint("eval", model_fp, cfg.eval.model_dump(), data_fp, pairs_fp, cfg.seed)

            def work() -> dict[str, Any]:
                sampler = models.sampler(model)
                info = evaluate(sampler, test, grader, cfg.eval, run.path(group), derive_seed(cfg.seed, f"{group}/evaluate"),
                                desc=f"{group} eval", key=fp)
                judged = judge_accuracy(LLMJudge(sampler, JUDGE, samples=1, params=greedy_judge), list(read_jsonl(pairs_path)))
                write_json(run.path(group, "judge_eval.json"), judged)
                return {"accuracy": info["accuracy"], **judged}

            run.stage(f"{group}/evaluate", fp, work, log.info)

        evaluate_stage("m1", m1, m1_fp)

        policy, policy_fp = m1, m1_fp
        forbidden = [p.prompt for p in test]
        well_formed = re.compile(rf"\d{{{width}}}\+\d{{{width}}}=")
        for t in range(1, sr.iterations + 1):
            it = f"iter-{t:02d}"

            # 1. self-instruction creation
            prompts_fp = fingerprint("prompts", policy_fp, sr.new_prompts, sr.shots, sr.prompt_temperature, cfg.seed, t)

            def make_prompts(policy=policy, it=it) -> dict[str, Any]:
                keep = PromptFilter(pool_prompts, novelty_threshold=None, forbidden=forbidden,
                                    check=lambda s: well_formed.fullmatch(s) is not None, min_chars=1)
                made, counts = create_prompts(
                    models.sampler(policy), pool_prompts, sr.new_prompts,
                    SamplingParams(temperature=sr.prompt_temperature, max_new_tokens=2 * width + 4),
                    derive_seed(cfg.seed, f"{it}/prompts"), shots=sr.shots, keep_filter=keep, header="", numbered=False,
                )
                write_jsonl(run.path(it, "prompts.jsonl"), (_problem_from_prompt(p, width, f"{it}-{i}").to_json() for i, p in enumerate(made)))
                return counts

            run.stage(f"{it}/prompts", prompts_fp, make_prompts, log.info)
            new = [Problem.from_json(r) for r in read_jsonl(run.path(it, "prompts.jsonl"))]

            # 2. N responses per new prompt
            gen_fp = _responses_stage(run, cfg, it, lambda policy=policy: models.sampler(policy), new, prompts_fp)

            # 3. the same model judges every response (3 judgements, averaged)
            judge_fp = fingerprint("judge", gen_fp, sr.judge_samples, sr.judge_temperature, sr.judge_max_new_tokens,
                                   sr.pair_judge)

            def judge_all(policy=policy, it=it, new=new) -> dict[str, Any]:
                samples = stages.load_samples(run.path(it, "samples.jsonl"))
                by_id = {p.id: p for p in new}
                if sr.pair_judge == "grader":  # the diagnostic: the task's grader in the judge's place
                    graded = [judge_score(by_id[s.problem_id].meta["a"], by_id[s.problem_id].meta["b"], s.completion, width)
                              for s in samples]
                    write_jsonl(run.path(it, "scores.jsonl"), (Score(float(v), f"grader: {why}").to_json() for v, why in graded))
                    return {"judged": len(samples), "unreadable": 0, "judge": "grader"}
                judge = LLMJudge(models.sampler(policy), JUDGE, sr.judge_samples, judge_params, derive_seed(cfg.seed, f"{it}/judge"))
                outputs = judge.judgements([by_id[s.problem_id] for s in samples], [s.completion for s in samples])
                scores = judge.scores(outputs)
                write_jsonl(run.path(it, "judgements.jsonl"), ({"problem_id": s.problem_id, "index": s.index, "outputs": o}
                                                               for s, o in zip(samples, outputs)))
                write_jsonl(run.path(it, "scores.jsonl"), (sc.to_json() for sc in scores))
                return {"judged": len(scores), "unreadable": sum(sc.value is None for sc in scores)}

            run.stage(f"{it}/judge", judge_fp, judge_all, log.info)

            # 4. best against worst, ties dropped
            pairs_it_fp = fingerprint("pairs", judge_fp, *_set(sr.min_chosen_score))

            def make_pairs(it=it, new=new) -> dict[str, Any]:
                samples = stages.load_samples(run.path(it, "samples.jsonl"))
                scores = stages.load_scores(run.path(it, "scores.jsonl"))
                pairs = best_vs_worst(samples, scores, sr.min_chosen_score)
                write_jsonl(run.path(it, "pairs.jsonl"), (p.to_json() for p in pairs))
                by_id = {p.id: p for p in new}
                truly = sum(
                    judge_score(by_id[p.problem_id].meta["a"], by_id[p.problem_id].meta["b"], p.chosen, width)[0]
                    > judge_score(by_id[p.problem_id].meta["a"], by_id[p.problem_id].meta["b"], p.rejected, width)[0]
                    for p in pairs
                )
                return {"pairs": len(pairs), "prompts": len(new), "chosen_truly_better": round(truly / max(len(pairs), 1), 5)}

            run.stage(f"{it}/pairs", pairs_it_fp, make_pairs, log.info)

            # 5. DPO from M_t -> M_{t+1}
            model = run.path(it, "model")
            train_fp = fingerprint("dpo", policy_fp, pairs_it_fp, cfg.train.model_dump(), sr.beta, sr.nll_weight, cfg.seed, it)
            run.stage(
                f"{it}/train", train_fp,
                lambda policy=policy, it=it, model=model: train_dpo(
                    policy, [Pair.from_json(r).dpo_row() for r in read_jsonl(run.path(it, "pairs.jsonl"))],
                    cfg.train, model, derive_seed(cfg.seed, it), sr.beta, max_len, sr.nll_weight),
                log.info,
            )
            policy, policy_fp = model, train_fp

            # 6. evaluate M_{t+1}
            evaluate_stage(it, policy, policy_fp)

        report, metrics = publish(run.root, time.perf_counter() - t_start)
        log.info(f"report: {report}")
        return metrics


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


def run_self_rewarding_chat(cfg: RunConfig, out: str | Path) -> dict[str, Any]:
    """The method on a chat model (`model.name_or_path`: a folder, hub name or .gguf file).

    M1 is the given model (the paper's M1 is Llama 2 70B after SFT on IFT + EFT data from
    Open Assistant, which is not available offline: a deviation). Each iteration: new
    prompts written few-shot from the pool (the paper's prompt, 8 examples), N responses
    each, judged by the same model with the paper's additive 5-point prompt word for word
    (3 judgements averaged), best against worst, DPO (LoRA with `train.lora_r`) from M_t.
    Each model is evaluated on held-out prompts: its greedy answers scored by itself and by
    M1's judge (a fixed yardstick), and head to head against M1's answers, judged by M1 in
    both orders (a win counts only when both orders agree).
    """
    from selftrain.instructions import FEWSHOT_HEADER
    from selftrain.report import publish
    from selftrain.samplers.teacher import ChatTemplateSampler

    sr = cfg.self_rewarding
    run = RunDir(out)
    with run.lock():
        t_start = time.perf_counter()
        set_torch_threads(cfg.model.torch_threads)
        atomic_write_text(run.path("config.yaml"), cfg.to_yaml())
        if sr.pair_judge != "self":
            raise ConfigError("self_rewarding.pair_judge: grader needs the embedded task's grader; a chat model judges itself")
        prompts = load_prompts(sr.seed_prompts)
        if len(prompts) < sr.shots + sr.eval_prompts:
            raise ConfigError(f"{sr.seed_prompts} has {len(prompts)} prompts; {sr.shots} shots and "
                              f"{sr.eval_prompts} held-out prompts need more")
        pool, held_out = prompts[: -sr.eval_prompts], prompts[-sr.eval_prompts:]
        eval_problems = [Problem(f"eval-{i}", p, "") for i, p in enumerate(held_out)]
        models = stages.ModelCache(cfg.sampling.batch_size)
        chat = lambda path: ChatTemplateSampler(models.sampler(path))  # noqa: E731
        m1 = Path(cfg.model.name_or_path)
        m1_fp = fingerprint("named", cfg.model.name_or_path)
        judge_params = SamplingParams(temperature=sr.judge_temperature, max_new_tokens=sr.judge_max_new_tokens)
        greedy_judge = SamplingParams(temperature=0.0, max_new_tokens=sr.judge_max_new_tokens)
        answer_params = SamplingParams(temperature=0.0, max_new_tokens=sr.max_new_tokens)

        def evaluate_stage(group: str, model: Path, model_fp: str) -> None:
            fp = fingerprint("chat-eval", model_fp, held_out, sr.max_new_tokens, sr.judge_max_new_tokens, sr.judge_finish, cfg.seed)

            def work() -> dict[str, Any]:
                answers = chat(model).generate(held_out, answer_params, cfg.seed)
                own_judge = LLMJudge(chat(model), "additive-5", 1, greedy_judge, finish=sr.judge_finish)
                judgements = own_judge.judgements(eval_problems, answers)
                own = own_judge.scores(judgements)
                info: dict[str, Any] = {"self_judged": _mean(own), "self_unreadable": sum(s.value is None for s in own),
                                        "self_finished": own_judge.finished}
                if group != "m1":
                    m1_answers = [r["answer"] for r in read_jsonl(run.path("m1", "answers.jsonl"))]
                    fixed = LLMJudge(chat(m1), "additive-5", 1, greedy_judge, finish=sr.judge_finish)
                    info["m1_judged"] = _mean(fixed(eval_problems, answers))
                    wins = fixed.pairwise(eval_problems, answers, m1_answers)
                    info["vs_m1"] = {"wins": wins.count(0), "losses": wins.count(1), "undecided": wins.count(None)}
                else:
                    info["m1_judged"] = info["self_judged"]
                write_jsonl(run.path(group, "answers.jsonl"), ({"prompt": p, "answer": a, "self_score": s.value, "judgement": j[0]}
                                                              for p, a, s, j in zip(held_out, answers, own, judgements)))
                write_json(run.path(group, "chat_eval.json"), info)
                return info

            run.stage(f"{group}/evaluate", fp, work, log.info)

        evaluate_stage("m1", m1, m1_fp)
        policy, policy_fp = m1, m1_fp
        for t in range(1, sr.iterations + 1):
            it = f"iter-{t:02d}"

            # 1. self-instruction creation: 8 pool prompts shown, the model writes the next
            prompts_fp = fingerprint("chat-prompts", policy_fp, pool, sr.new_prompts, sr.shots, sr.prompt_temperature, cfg.seed, t)

            def make_prompts(policy=policy, it=it) -> dict[str, Any]:
                keep = PromptFilter(pool, min_chars=10, max_chars=1000, forbidden=held_out)
                made, counts = create_prompts(
                    chat(policy), pool, sr.new_prompts,
                    SamplingParams(temperature=sr.prompt_temperature, top_p=0.9, max_new_tokens=96),
                    derive_seed(cfg.seed, f"{it}/prompts"), shots=sr.shots, keep_filter=keep, header=FEWSHOT_HEADER,
                )
                write_jsonl(run.path(it, "prompts.jsonl"), (Problem(f"{it}-{i}", p, "").to_json() for i, p in enumerate(made)))
                return counts

            run.stage(f"{it}/prompts", prompts_fp, make_prompts, log.info)
            new = [Problem.from_json(r) for r in read_jsonl(run.path(it, "prompts.jsonl"))]

            # 2. N responses per new prompt
            gen_fp = _responses_stage(run, cfg, it, lambda policy=policy: chat(policy), new, prompts_fp)

            # 3. the same model judges every response with the paper's prompt (3 judgements, averaged)
            judge_fp = fingerprint("judge", gen_fp, sr.judge_samples, sr.judge_temperature, sr.judge_max_new_tokens,
                                   sr.judge_finish)

            def judge_all(policy=policy, it=it, new=new) -> dict[str, Any]:
                samples = stages.load_samples(run.path(it, "samples.jsonl"))
                by_id = {p.id: p for p in new}
                judge = LLMJudge(chat(policy), "additive-5", sr.judge_samples, judge_params, derive_seed(cfg.seed, f"{it}/judge"),
                                 finish=sr.judge_finish)
                outputs = judge.judgements([by_id[s.problem_id] for s in samples], [s.completion for s in samples])
                scores = judge.scores(outputs)
                write_jsonl(run.path(it, "judgements.jsonl"), ({"problem_id": s.problem_id, "index": s.index, "outputs": o}
                                                               for s, o in zip(samples, outputs)))
                write_jsonl(run.path(it, "scores.jsonl"), (sc.to_json() for sc in scores))
                return {"judged": len(scores), "unreadable": sum(sc.value is None for sc in scores), "mean": _mean(scores),
                        "finished": judge.finished}

            run.stage(f"{it}/judge", judge_fp, judge_all, log.info)

            # 4. best against worst, ties and unreadable dropped
            pairs_it_fp = fingerprint("pairs", judge_fp, *_set(sr.min_chosen_score))

            def make_pairs(it=it, new=new) -> dict[str, Any]:
                pairs = best_vs_worst(stages.load_samples(run.path(it, "samples.jsonl")), stages.load_scores(run.path(it, "scores.jsonl")),
                                      sr.min_chosen_score)
                write_jsonl(run.path(it, "pairs.jsonl"), (p.to_json() for p in pairs))
                return {"pairs": len(pairs), "prompts": len(new)}

            run.stage(f"{it}/pairs", pairs_it_fp, make_pairs, log.info)

            # 5. DPO from M_t -> M_{t+1}, on the chat-formatted pairs (LoRA with train.lora_r)
            model = run.path(it, "model")
            train_fp = fingerprint("dpo", policy_fp, pairs_it_fp, cfg.train.model_dump(), sr.beta, sr.nll_weight, cfg.seed, it)

            def dpo(policy=policy, it=it, model=model) -> dict[str, Any]:
                rows = [{"prompt": [{"role": "user", "content": p.prompt}],
                         "chosen": [{"role": "assistant", "content": p.chosen}],
                         "rejected": [{"role": "assistant", "content": p.rejected}]}
                        for p in (Pair.from_json(r) for r in read_jsonl(run.path(it, "pairs.jsonl")))]
                return train_dpo(policy, rows, cfg.train, model, derive_seed(cfg.seed, it), sr.beta, nll_weight=sr.nll_weight)

            run.stage(f"{it}/train", train_fp, dpo, log.info)
            policy, policy_fp = model, train_fp

            # 6. evaluate M_{t+1} on the held-out prompts
            evaluate_stage(it, policy, policy_fp)

        report, metrics = publish(run.root, time.perf_counter() - t_start)
        log.info(f"report: {report}")
        return metrics


def _responses_stage(run: RunDir, cfg: RunConfig, it: str, sampler, new: list[Problem], prompts_fp: str) -> str:
    """N responses per new prompt from `sampler()` (step 2 of every iteration); its fingerprint."""
    sr = cfg.self_rewarding
    gen_fp = fingerprint("responses", prompts_fp, sr.responses_per_prompt, sr.temperature, sr.top_p, sr.max_new_tokens)
    params = SamplingParams(temperature=sr.temperature, top_p=sr.top_p, max_new_tokens=sr.max_new_tokens)
    run.stage(f"{it}/responses", gen_fp, lambda: {"samples": len(stages.generate(
        sampler(), new, sr.responses_per_prompt, params, run.path(it, "samples.jsonl"),
        derive_seed(cfg.seed, f"{it}/responses"), cfg.sampling.shard_size, desc=f"{it} responses", key=gen_fp))}, log.info)
    return gen_fp


def _set(value) -> list:
    """[value] when an option is set, [] when not: an option left unset keeps the
    fingerprints of runs made before it existed."""
    return [] if value is None else [value]


def _mean(scores) -> float | None:
    read = [s.value for s in scores if s.value is not None]
    return round(sum(read) / len(read), 4) if read else None


def collect_self_rewarding(run: RunDir, cfg: RunConfig) -> dict[str, Any]:
    """metrics.json for a Self-Rewarding run: one row per model, M1 then each iteration."""
    import json

    if cfg.model.name_or_path is not None:
        rows = []
        for i, group in enumerate(["m1"] + [f"iter-{t:02d}" for t in range(1, cfg.self_rewarding.iterations + 1)]):
            path = run.path(group, "chat_eval.json")
            if not path.is_file():
                continue
            row = {"group": group, "label": f"M{i + 1}", **json.loads(path.read_text())}
            for stage in ("prompts", "judge", "pairs", "train"):
                rec = run.record(f"{group}/{stage}")
                if rec is not None:
                    row[stage] = rec.info
            rows.append(row)
        return {"method": "self-rewarding", "chat": True, "name": cfg.name, "seed": cfg.seed,
                "model": cfg.model.name_or_path, "rows": rows}

    rows = []
    groups = ["m1"] + [f"iter-{t:02d}" for t in range(1, cfg.self_rewarding.iterations + 1)]
    for i, group in enumerate(groups):
        path, judged = run.path(group, "eval.json"), run.path(group, "judge_eval.json")
        if not path.is_file() or not judged.is_file():
            continue
        row: dict[str, Any] = {"group": group, "label": f"M{i + 1}", "test": json.loads(path.read_text()),
                               **json.loads(judged.read_text())}
        for stage in ("prompts", "pairs", "train"):
            rec = run.record(f"{group}/{stage}")
            if rec is not None:
                row[stage] = rec.info
        rows.append(row)
    return {"method": "self-rewarding", "name": cfg.name, "seed": cfg.seed, "rows": rows}


def demo_config(seed: int = 0) -> RunConfig:
    """The Self-Rewarding miniature: `selftrain demo --method self-rewarding`."""
    from selftrain.config import EvalConfig, ModelConfig, SamplingConfig, SelfRewardingConfig, TinyModelConfig, TrainConfig

    return RunConfig(
        name="arithmetic-self-rewarding",
        seed=seed,
        method="self-rewarding",
        # GPT-2's own dropout and activation, as the documented numbers were measured.
        model=ModelConfig(tiny=TinyModelConfig(max_length=160, dropout=0.1, activation="gelu_new")),
        sampling=SamplingConfig(batch_size=512),
        sft=TrainConfig(steps=200),
        train=TrainConfig(steps=40, batch_size=32, learning_rate=5e-5, warmup_steps=5, logging_steps=20),
        self_rewarding=SelfRewardingConfig(pretrain_steps=300, writing_size=100, eft_size=400, judge_max_new_tokens=80,
                                           nll_weight=1.0),
        eval=EvalConfig(k=1, temperature=1.0),
    )
