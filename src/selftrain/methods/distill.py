"""Distillation: a teacher writes solutions, a verifier filters them, a smaller student
learns from what is kept; the student can become the next round's teacher.

    0. teacher: a larger model SFT-trained on the human data (or any model or endpoint
       named in `teacher:`); baseline: the student SFT-trained on the human data only
    for r = 1 .. R:
        1. generate: the teacher samples K solutions for every problem of the pool
        2. score:    the task's verifier marks each one correct or not
        3. select:   correct only, at most N per problem, no duplicates
        4. train:    the student, from its initialisation, on the human data plus the kept
                     solutions, for as many steps as the baseline (a like-for-like comparison)
        5. evaluate the student; with `distill.student_becomes_teacher`, it is the next
           round's teacher

Run it:  `selftrain run configs/arithmetic-distill.yaml`

The report compares the distilled student with the same student trained on human data only,
and shows the teacher's accuracy. Stages resume as in ReST-EM (one folder per stage group).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from selftrain import stages
from selftrain.artifacts import RunDir, atomic_write_text, derive_seed, fingerprint, read_json, write_jsonl
from selftrain.config import RunConfig
from selftrain.methods.rest_em import _score, _select
from selftrain.models import set_torch_threads
from selftrain.samplers.base import SamplingParams
from selftrain.tasks import build_task
from selftrain.training.tiny import save_tiny

log = logging.getLogger("selftrain")


def run_distill(cfg: RunConfig, out: str | Path) -> dict[str, Any]:
    from selftrain.report import publish

    run = RunDir(out)
    dc = cfg.distill
    with run.lock():
        t_start = time.perf_counter()
        set_torch_threads(cfg.model.torch_threads)
        atomic_write_text(run.path("config.yaml"), cfg.to_yaml())
        task = build_task(cfg.task)
        verifier, grader = task.verifier(), task.grader()
        human, pool, test = task.human(), task.pool(), task.test()
        data_fp = fingerprint(task.name, [p.to_json() for split in (human, pool, test) for p in split])
        models = stages.ModelCache(cfg.sampling.batch_size)
        max_len = max(cfg.model.tiny.max_length, dc.teacher_tiny.max_length)
        human_rows = lambda: stages.sft_rows([(p.prompt, p.solution) for p in human if p.solution])  # noqa: E731

        def build(group: str, tiny) -> tuple[Path, str]:
            folder, fp = run.path(group, "model"), fingerprint("tiny", tiny.model_dump(), cfg.seed, group)
            run.stage(f"{group}/build", fp, lambda: {"parameters": save_tiny(folder, tiny, derive_seed(cfg.seed, group))}, log.info)
            return folder, fp

        stage = stages.TrainEval(run, cfg, models, test, grader, data_fp, max_len, log.info)

        # step 0: the teacher, and the student on human data only (the baseline)
        if cfg.teacher.model:
            from selftrain.samplers.teacher import make_teacher

            external = make_teacher(cfg.teacher, run.root)
            teacher, teacher_fp = None, fingerprint("external", cfg.teacher.model_dump())
        else:
            external = None
            t_init, t_init_fp = build("teacher-init", dc.teacher_tiny)
            teacher, teacher_fp = stage.train("teacher", t_init, t_init_fp, human_rows, data_fp, dc.teacher_sft)
            stage.evaluate("teacher", teacher, teacher_fp)
        s_init, s_init_fp = build("student-init", cfg.model.tiny)
        baseline, baseline_fp = stage.train("student-human", s_init, s_init_fp, human_rows, data_fp, cfg.sft)
        stage.evaluate("student-human", baseline, baseline_fp)

        params = SamplingParams(temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p,
                                top_k=cfg.sampling.top_k, max_new_tokens=cfg.sampling.max_new_tokens)
        for r in range(1, dc.rounds + 1):
            group = f"round-{r:02d}"
            gen_fp = fingerprint("generate", teacher_fp, cfg.sampling.model_dump(), data_fp, cfg.seed, r)
            sampler = (lambda: external) if external is not None else (lambda m=teacher: models.sampler(m))
            run.stage(f"{group}/generate", gen_fp, lambda: {"samples": len(stages.generate(
                sampler(), pool, cfg.sampling.k, params, run.path(group, "samples.jsonl"),
                derive_seed(cfg.seed, f"{group}/generate"), cfg.sampling.shard_size, desc=f"{group} teacher", key=gen_fp))},
                log.info)
            score_fp = fingerprint("score", gen_fp, type(verifier).__name__)
            run.stage(f"{group}/score", score_fp, lambda: _score(verifier, pool, run.path(group)), log.info)
            select_fp = fingerprint("select", score_fp, cfg.select.model_dump())
            teacher_name = cfg.teacher.model or str(teacher.relative_to(run.root))
            run.stage(f"{group}/select", select_fp,
                      lambda g=group, name=teacher_name, rr=r: _select_with_lineage(cfg, pool, run.path(g), rr, name), log.info)
            kept_rows = lambda g=group: stages.sft_rows(  # noqa: E731
                [(s.prompt, s.completion) for s in stages.load_samples(run.path(g, "selected.jsonl"))]
            ) + (human_rows() if dc.mix_human else [])
            student, student_fp = stage.train(group, s_init, s_init_fp, kept_rows, fingerprint(select_fp, data_fp, dc.mix_human), cfg.sft)
            stage.evaluate(group, student, student_fp)
            if dc.student_becomes_teacher:
                teacher, teacher_fp, external = student, student_fp, None

        report, metrics = publish(run.root, time.perf_counter() - t_start)
        log.info(f"report: {report}")
        return metrics


def _select_with_lineage(cfg: RunConfig, pool, folder: Path, round_: int, teacher: str) -> dict[str, Any]:
    """The kept samples (`selected.jsonl`), and the same as a dataset with lineage (`data.jsonl`)."""
    info = _select(cfg, pool, folder)
    rows = [{"prompt": s.prompt, "completion": s.completion,
             "lineage": {"method": "distill", "iteration": round_, "model": teacher, "prompt_id": s.problem_id,
                         "sample": s.index, "score": 1.0}}
            for s in stages.load_samples(folder / "selected.jsonl")]
    write_jsonl(folder / "data.jsonl", rows)
    return info


def collect_distill(run: RunDir, cfg: RunConfig) -> dict[str, Any]:
    rows = []
    groups = [("teacher", "teacher (SFT on human data)"), ("student-human", "student, human data only")]
    groups += [(f"round-{r:02d}", f"student distilled, round {r}") for r in range(1, cfg.distill.rounds + 1)]
    for group, label in groups:
        path = run.path(group, "eval.json")
        if not path.exists():
            continue
        row = {"group": group, "label": label, "test": read_json(path)}
        select = run.record(f"{group}/select")
        score = run.record(f"{group}/score")
        if select:
            row["data"] = {**(score.info if score else {}), **select.info}
        rows.append(row)
    return {"method": "distill", "name": cfg.name, "seed": cfg.seed, "rows": rows}


def render_distill(metrics: dict[str, Any]) -> str:
    from html import escape

    from selftrain.report import _page, _pct

    buckets = sorted({b for r in metrics["rows"] for b in r["test"]["by_bucket"]})
    head = ["model", "accuracy %", *[f"{b} %" for b in buckets], "teacher samples", "kept"]
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in [
            r["label"], _pct(r["test"]["accuracy"]), *[_pct(r["test"]["by_bucket"].get(b)) for b in buckets],
            r.get("data", {}).get("samples", ""), r.get("data", {}).get("kept", "")]) + "</tr>"
        for r in metrics["rows"])
    table = "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + f"</tr>{body}</table>"
    return _page(f"selftrain: {escape(metrics['name'])} (seed {metrics['seed']})",
                 "<p>Distillation: greedy test accuracy of the teacher, of the student trained on human data "
                 f"only, and of the student trained on human data plus the teacher's verified solutions.</p>{table}")
