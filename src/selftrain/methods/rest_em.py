"""ReST-EM: Singh et al. 2023, "Beyond Human Data: Scaling Self-Training for Problem-Solving
with Language Models" (arXiv 2312.06585).

The algorithm (the paper's Algorithm 1, with its "EM" reading):

    0. Start from a base policy p_0 (here: the model after SFT on the human data).
    for t = 1 .. T:
        1. E-step, generate: sample K solutions for every problem of the pool from p_{t-1}.
        2. E-step, score:    the binary verifier marks each solution correct or not.
        3. E-step, select:   keep correct solutions only, at most N per problem.
        4. M-step, train:    fine-tune the *base* model on the kept solutions -> p_t.
        5. Evaluate p_t on the held-out test set.

Run it:  `selftrain run configs/arithmetic-rest-em.yaml`  (or `selftrain demo`).

Deliberate deviations from the paper, each a config choice:
- The base model. The paper fine-tunes a pretrained model that is few-shot prompted for
  the first E-step. The embedded default has no pretraining, so p_0 is the tiny model after
  SFT on the human worked solutions, and "base" means that model (`start_from: base`).
  `start_from: init` fine-tunes the model from before that SFT instead (for the tiny model:
  its random initialisation), the closest analogue of the paper's pretrained base.
- The demo's default is `start_from: previous` (each iteration continues from the last
  one), which the measurements in docs/rest-em.md show works best on the tiny model at the
  same cost; the paper's `base` is one config line away.
- Baselines: besides SFT on human data (the paper's baseline), a *compute-matched* one
  trains on human data for as many further steps as all ReST-EM iterations together, since
  a short SFT baseline overstates the gain.
- Steps per iteration are fixed (`train.steps`) rather than the paper's early stopping on
  a validation set, so that the compute-matched baseline is exact.
- The verifier checks only the final answer, as in the paper, so a few kept solutions have
  a flawed step and the right answer (`task.arithmetic.verifier: steps` rejects those).
- `rest_em.mix_human: true` adds the human data to every M-step (as RFT does); off by
  default, as in the paper.

Rejection-sampling fine-tuning (RFT, Yuan et al. 2023) is one pass of this loop with
`iterations: 1`, `start_from: init` and `mix_human: true`: configs/arithmetic-rft.yaml.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from selftrain import stages
from selftrain.artifacts import RunDir, atomic_write_text, derive_seed, fingerprint, write_jsonl
from selftrain.config import RunConfig
from selftrain.models import set_torch_threads
from selftrain.records import Problem
from selftrain.samplers.base import SamplingParams
from selftrain.selection import select_correct
from selftrain.tasks import build_task
from selftrain.training.tiny import save_tiny

log = logging.getLogger("selftrain")


def run_rest_em(cfg: RunConfig, out: str | Path) -> dict[str, Any]:
    """Run (or resume) ReST-EM with `cfg` in the folder `out`; returns the metrics."""
    from selftrain.report import publish

    run = RunDir(out)
    with run.lock():
        t_start = time.perf_counter()
        threads = set_torch_threads(cfg.model.torch_threads)
        log.info(f"run folder {run.root} | torch threads {threads}")
        atomic_write_text(run.path("config.yaml"), cfg.to_yaml())
        task = build_task(cfg.task)
        verifier, grader = task.verifier(), task.grader()
        human, pool, test = task.human(), task.pool(), task.test()
        log.info(f"task {task.name}: {len(human)} human, {len(pool)} pool, {len(test)} test problems")
        data_fp = fingerprint(task.name, [p.to_json() for split in (human, pool, test) for p in split])
        models = stages.ModelCache(cfg.sampling.batch_size)
        max_len = cfg.model.tiny.max_length if cfg.model.name_or_path is None else None

        stage = stages.TrainEval(run, cfg, models, test, grader, data_fp, max_len, log.info)

        # step 0: the initial model, and SFT on the human data -> the base policy p_0
        if cfg.model.name_or_path is None:
            init = run.path("init", "model")
            init_fp = fingerprint("tiny", cfg.model.tiny.model_dump(), cfg.seed)
            run.stage("init/build", init_fp, lambda: {"parameters": save_tiny(init, cfg.model.tiny, cfg.seed)}, log.info)
        else:
            init, init_fp = Path(cfg.model.name_or_path), fingerprint("named", cfg.model.name_or_path)
        # a task without worked solutions gives no rows: the SFT stage then keeps the start model
        human_rows = lambda: stages.sft_rows([(p.prompt, p.solution) for p in human if p.solution])  # noqa: E731
        base, base_fp = stage.train("sft", init, init_fp, human_rows, data_fp, cfg.sft)
        stage.evaluate("sft", base, base_fp)

        # baseline: SFT on human data for as many more steps as all ReST-EM iterations
        if cfg.rest_em.compute_matched_baseline:
            matched = cfg.train.model_copy(update={"steps": cfg.train.steps * cfg.rest_em.iterations})
            cm, cm_fp = stage.train("compute-matched", base, base_fp, human_rows, data_fp, matched)
            stage.evaluate("compute-matched", cm, cm_fp)

        policy, policy_fp = base, base_fp
        params = SamplingParams(
            temperature=cfg.sampling.temperature,
            top_p=cfg.sampling.top_p,
            top_k=cfg.sampling.top_k,
            max_new_tokens=cfg.sampling.max_new_tokens,
        )
        for t in range(1, cfg.rest_em.iterations + 1):
            it = f"iter-{t:02d}"

            # step 1 (E-step): K samples per pool problem from the current policy
            gen_fp = fingerprint("generate", policy_fp, cfg.sampling.model_dump(), data_fp, cfg.seed, t)
            run.stage(
                f"{it}/generate",
                gen_fp,
                lambda: {
                    "samples": len(
                        stages.generate(
                            models.sampler(policy), pool, cfg.sampling.k, params, run.path(it, "samples.jsonl"),
                            derive_seed(cfg.seed, f"{it}/generate"), cfg.sampling.shard_size,
                            desc=f"{it} E-step", key=gen_fp,
                        )
                    )
                },
                log.info,
            )

            # step 2 (E-step): the binary verifier scores every sample
            score_fp = fingerprint("score", gen_fp, type(verifier).__name__)
            run.stage(f"{it}/score", score_fp, lambda: _score(verifier, pool, run.path(it)), log.info)

            # step 3 (E-step): correct samples only, at most N per problem, no duplicates
            select_fp = fingerprint("select", score_fp, cfg.select.model_dump())
            run.stage(f"{it}/select", select_fp, lambda: _select(cfg, pool, run.path(it)), log.info)

            # step 4 (M-step): fine-tune on the kept samples, from the base (paper) or previous model
            start, start_fp = {
                "base": (base, base_fp),
                "previous": (policy, policy_fp),
                "init": (init, init_fp),
            }[cfg.rest_em.start_from]
            kept_rows = lambda: stages.sft_rows(  # noqa: E731
                [(s.prompt, s.completion) for s in stages.load_samples(run.path(it, "selected.jsonl"))]
            ) + (human_rows() if cfg.rest_em.mix_human else [])
            rows_fp = fingerprint(select_fp, data_fp) if cfg.rest_em.mix_human else select_fp
            policy, policy_fp = stage.train(it, start, start_fp, kept_rows, rows_fp, cfg.train)

            # step 5: evaluate the new policy on the held-out test set
            stage.evaluate(it, policy, policy_fp)

        report, metrics = publish(run.root, time.perf_counter() - t_start)
        log.info(f"report: {report}")
        return metrics


def _score(verifier, pool: list[Problem], folder: Path) -> dict[str, Any]:
    samples = stages.load_samples(folder / "samples.jsonl")
    scores = stages.score(verifier, pool, samples, folder / "scores.jsonl")
    solved = {s.problem_id for s, sc in zip(samples, scores) if sc.accepted}
    return {
        "samples": len(samples),
        "correct": sum(sc.accepted for sc in scores),
        "unjudged": sum(sc.value is None for sc in scores),
        "problems_solved": len(solved),
    }


def _select(cfg: RunConfig, pool: list[Problem], folder: Path) -> dict[str, Any]:
    samples = stages.load_samples(folder / "samples.jsonl")
    scores = stages.load_scores(folder / "scores.jsonl")
    kept = select_correct(samples, scores, cfg.select.max_per_problem, cfg.select.dedupe)
    write_jsonl(folder / "selected.jsonl", (s.to_json() for s in kept))
    buckets = {p.id: p.bucket for p in pool}
    by_bucket: dict[str, int] = {}
    for s in kept:
        by_bucket[buckets[s.problem_id]] = by_bucket.get(buckets[s.problem_id], 0) + 1
    return {"kept": len(kept), "kept_by_bucket": dict(sorted(by_bucket.items()))}
