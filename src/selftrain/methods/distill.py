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

The config section `distill:` holds each step's settings by role: `teacher` (an external
teacher; empty `model`: the built-in one, `teacher_tiny` trained with `teacher_sft`),
`student_sft` (step 0's baseline and step 4), `generate` (step 1), `select` (step 3).

The report compares the distilled student with the same student trained on human data only,
and shows the teacher's accuracy. Stages resume as in ReST-EM (one folder per stage group).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from selftrain import stages
from selftrain.artifacts import RunDir
from selftrain.config import Generation, SelectConfig, TaskRun, TeacherConfig, TinyModelConfig, TrainConfig, _Section
from selftrain.methods import Method
from selftrain.report import escape, page, pct, table


class DistillSection(_Section):
    """Teacher -> student distillation on a task with a verifier."""

    rounds: int = Field(1, ge=1)
    """Rounds of steps 1-5 (each student may teach the next round)."""
    teacher: TeacherConfig = TeacherConfig(chat=False)
    """An external teacher (a model folder or an endpoint); empty `model`: the built-in one."""
    teacher_tiny: TinyModelConfig = TinyModelConfig()
    """The built-in teacher: a tiny model of this size..."""
    teacher_sft: TrainConfig = TrainConfig(steps=300)
    """...trained on the human data with these settings."""
    student_sft: TrainConfig = TrainConfig(steps=300)
    """The student (`model.tiny`), on the human data alone (the baseline) and on human + kept data."""
    generate: Generation = Generation()
    """The teacher's K solutions per pool problem."""
    select: SelectConfig = SelectConfig()
    mix_human: bool = True
    """Train the student on the human data plus the kept teacher data (False: teacher data only)."""
    student_becomes_teacher: bool = True
    """From round 2 on, the previous round's student writes the data."""


class DistillConfig(TaskRun):
    name: str = "distill"
    method: Literal["distill"] = "distill"
    distill: DistillSection = DistillSection()


def run(ctx: stages.RunContext[DistillConfig]) -> None:
    """Distillation, steps numbered as in the docstring."""
    sec = ctx.cfg.distill
    verifier, human = ctx.task.verifier(), stages.human_rows(ctx)

    # step 0: the teacher, and the student on human data only (the baseline)
    if sec.teacher.model:
        teacher, teacher_sampler = stages.external_model(sec.teacher.model, sec.teacher.model_dump()), sec.teacher
    else:
        t_init = stages.build_tiny(ctx, "teacher-init", sec.teacher_tiny, ctx.seed("teacher-init"))
        teacher, teacher_sampler = stages.sft(ctx, "teacher", t_init, human, sec.teacher_sft, sec.teacher_tiny.max_length), None
        stages.evaluate(ctx, "teacher", teacher, ctx.cfg.eval)
    s_init = stages.build_tiny(ctx, "student-init", ctx.cfg.model.tiny, ctx.seed("student-init"))
    stages.evaluate(ctx, "student-human", stages.sft(ctx, "student-human", s_init, human, sec.student_sft), ctx.cfg.eval)

    pool = stages.decontaminate_problems(ctx, "pool", ctx.pool)  # no pool problem overlaps a test item
    for r in range(1, sec.rounds + 1):
        group = stages.group("round", r)
        # step 1: the teacher samples K solutions for every pool problem
        samples = stages.generate(ctx, group, teacher, pool, sec.generate, sampler=teacher_sampler)
        # step 2: the verifier scores them; step 3: correct only, capped, deduplicated, decontaminated
        scores = stages.score(ctx, group, samples, pool, verifier)
        lineage = {"method": "distill", "iteration": r, "model": sec.teacher.model or str(teacher.path.relative_to(ctx.run.root))}
        kept = stages.select(ctx, group, scores, pool, sec.select, lineage)
        kept = stages.decontaminate(ctx, group, kept, ("prompt", "completion"))
        # step 4: the student, from its initialisation, on human + kept data
        student = stages.sft(ctx, group, s_init, kept + human if sec.mix_human else kept, sec.student_sft)
        # step 5: evaluate; the student may write the next round's data
        stages.evaluate(ctx, group, student, ctx.cfg.eval)
        if sec.student_becomes_teacher:
            teacher, teacher_sampler = student, None


# --- report ---------------------------------------------------------------------------


def collect(run: RunDir, cfg: DistillConfig) -> dict[str, Any]:
    rows = []
    groups = [("teacher", "teacher (SFT on human data)"), ("student-human", "student, human data only")]
    groups += [(stages.group("round", r), f"student distilled, round {r}") for r in range(1, cfg.distill.rounds + 1)]
    for group, label in groups:
        test = stages.evaluation(run, group)
        if test is None:
            continue
        row = {"group": group, "label": label, "test": test}
        select, score = run.record(f"{group}/select"), run.record(f"{group}/score")
        if select:
            row["data"] = {**(score.info if score else {}), **select.info}
        rows.append(row)
    return {"method": "distill", "name": cfg.name, "seed": cfg.seed, "rows": rows}


def render(metrics: dict[str, Any]) -> str:
    buckets = sorted({b for r in metrics["rows"] for b in r["test"]["by_bucket"]})
    head = ["model", "accuracy %", *[f"{b} %" for b in buckets], "teacher samples", "kept"]
    body = [[r["label"], pct(r["test"]["accuracy"]), *[pct(r["test"]["by_bucket"].get(b)) for b in buckets],
             r.get("data", {}).get("samples", ""), r.get("data", {}).get("kept", "")] for r in metrics["rows"]]
    return page(f"selftrain: {escape(metrics['name'])} (seed {metrics['seed']})",
                "<p>Distillation: greedy test accuracy of the teacher, of the student trained on human data "
                f"only, and of the student trained on human data plus the teacher's verified solutions.</p>{table(head, body)}")


def summary(metrics: dict[str, Any]) -> list[str]:
    return [f"{r['label']:<34} accuracy {r['test']['accuracy'] * 100:5.1f}%" for r in metrics["rows"]]


def _needs(cfg: DistillConfig) -> list[tuple[str, Any, set[str]]]:
    needs = [("model.sampler", cfg.model.sampler, {"local"})]
    if cfg.distill.teacher.model:
        needs.append(("distill.teacher", cfg.distill.teacher, set()))
    return needs


METHOD = Method("distill", DistillConfig, run, collect, render, summary, needs=_needs,
                final_model=lambda cfg: stages.group("round", cfg.distill.rounds))
