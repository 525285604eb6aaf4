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

The config section `rest_em:` holds each step's settings by role: `sft` (step 0),
`e_step` (step 1: K and the sampling parameters), `select` (step 3), `m_step` (step 4).

Run it:  `selftrain run configs/arithmetic-rest-em.yaml`  (or `selftrain demo`).

Deliberate deviations from the paper, each a config choice:
- The base model. The paper fine-tunes a pretrained model that is few-shot prompted for
  the first E-step. The embedded default has no pretraining, so p_0 is the tiny model after
  SFT on the human worked solutions, and "base" means that model (`start_from: base`).
  `start_from: init` fine-tunes the model from before that SFT instead (for the tiny model:
  its random initialisation), the closest analogue of the paper's pretrained base. With a
  pretrained model, `sft: null` skips step 0 and samples the first E-step from the model
  few-shot prompted, as the paper does (configs/smollm2-rest-em.yaml); the exemplars stay
  in the prompt template at every iteration, not only the first.
- The demo's default is `start_from: previous` (each iteration continues from the last
  one), which the measurements in docs/rest-em.md show works best on the tiny model at the
  same cost; the paper's `base` is one config line away.
- Baselines: besides SFT on human data (the paper's baseline), a *compute-matched* one
  trains on human data for as many further steps as all ReST-EM iterations together, since
  a short SFT baseline overstates the gain.
- Steps per iteration are fixed (`m_step.steps`) rather than the paper's early stopping on
  a validation set, so that the compute-matched baseline is exact.
- The verifier checks only the final answer, as in the paper, so a few kept solutions have
  a flawed step and the right answer (`task.arithmetic.verifier: steps` rejects those).
- `rest_em.mix_human: true` adds the human data to every M-step (as RFT does); off by
  default, as in the paper.
- Pool problems and kept samples that overlap an evaluation set are dropped
  (decontamination, `decontaminate:`; not in the paper), and so are rows a person rejected
  in `selftrain review`.

Beyond the human data, easy to hard (Lee et al. 2025, "Self-Improving Transformers Overcome
Easy-to-Hard and Length Generalization Challenges", arXiv 2502.01612), two config sections:
- `rest_em.curriculum`: the E-step's pool starts at the levels the human data covers
  (`Task.level`: digits, MATH's level, a JSONL field); when the E-step accepts
  `threshold` of the hardest level's samples, the next level joins; easier levels are
  thinned to `mastered_share`. `control: true` also runs the loop on the whole pool.
- `rest_em.filter`: `kind: majority` accepts the samples that give their problem's
  majority answer (with a length / format filter) instead of the verifier, for a task
  without one; the grader audits how many kept samples were truly right.
configs/arithmetic-curriculum.yaml; docs/curriculum.md has the measurements.

Rejection-sampling fine-tuning (RFT, Yuan et al. 2023) is one pass of this loop with
`iterations: 1`, `start_from: init` and `mix_human: true`: configs/arithmetic-rft.yaml.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from selftrain import stages
from selftrain.artifacts import RunDir
from selftrain.config import (
    Generation,
    SelectConfig,
    TaskRun,
    TrainConfig,
    _Section,
)
from selftrain.errors import ConfigError
from selftrain.methods import Method
from selftrain.report import PALETTE, escape, line_chart, page, pct, pct_cells, table
from selftrain.stages.curriculum import CurriculumConfig
from selftrain.verifiers.majority import MajorityVote


class FilterConfig(_Section):
    """Which samples the E-step accepts: the task's verifier (ReST-EM), or, for a task
    without one, the model's own agreement (Lee et al. 2025)."""

    kind: Literal["verifier", "majority"] = "verifier"
    """`verifier`: the task's verifier; `majority`: majority voting over the K samples."""
    min_agreement: float = Field(0.5, gt=0, le=1)
    """Majority: the winning answer must hold at least this share of a problem's K samples."""
    length_tolerance: float | None = Field(None, ge=0)
    """Majority: drop a sample whose length differs from the median of its problem's
    samples by more than this share (0: exactly the median); None: no length filter."""


class RestEMSection(_Section):
    iterations: int = Field(3, ge=1)
    """Iterations of steps 1-5 (E-step and M-step)."""
    start_from: Literal["base", "previous", "init"] = "previous"
    """Where each iteration's fine-tuning starts: `base`, the model the loop started from
    (the paper); `previous`, the last iteration's model; `init`, the model before SFT on
    human data (the random initialisation of the tiny model, or the pretrained model)."""
    mix_human: bool = False
    """Train each M-step on the kept samples *and* the human data (as RFT does), instead of
    the kept samples alone (the paper)."""
    compute_matched_baseline: bool = True
    """Also train on human data for as many steps as all ReST-EM iterations together."""
    sft: TrainConfig | None = TrainConfig(steps=300)
    """Step 0: supervised fine-tuning on the human data, the starting policy and first baseline.
    None: no SFT, the start model itself is p_0 (a pretrained model, few-shot prompted by
    the task's prompt template, as in the paper)."""
    e_step: Generation = Generation()
    """Step 1: K samples per pool problem, and how they are sampled."""
    filter: FilterConfig = FilterConfig()
    """Step 2: what accepts a sample: the task's verifier (the paper) or majority voting."""
    select: SelectConfig = SelectConfig()
    """Step 3: which correct samples are kept."""
    curriculum: CurriculumConfig | None = None
    """Easy to hard (Lee et al. 2025): the E-step's pool grows a level at a time; None: the
    whole pool every iteration (the paper)."""
    m_step: TrainConfig = TrainConfig()
    """Step 4: fine-tuning in each iteration."""


class RestEMConfig(TaskRun):
    """ReST-EM; its defaults are the embedded demo (`configs/arithmetic-rest-em.yaml`)."""

    name: str = "arithmetic-rest-em"
    method: Literal["rest-em"] = "rest-em"
    rest_em: RestEMSection = RestEMSection()
    """ReST-EM's steps, one sub-section per role."""


def run(ctx: stages.RunContext[RestEMConfig]) -> None:
    """ReST-EM, steps numbered as in the docstring."""
    sec = ctx.cfg.rest_em

    # step 0: the initial model, and SFT on the human data -> the base policy p_0
    init = stages.start_model(ctx, ctx.cfg.model)
    human = stages.human_rows(ctx)  # a task without worked solutions gives none: SFT keeps the start model
    base = stages.sft(ctx, "sft", init, human, sec.sft) if sec.sft else init
    stages.evaluate(ctx, "sft", base, ctx.cfg.eval)

    # baseline: SFT on human data for as many more steps as all ReST-EM iterations together
    if sec.compute_matched_baseline:
        matched = sec.m_step.model_copy(update={"steps": sec.m_step.steps * sec.iterations})
        stages.evaluate(ctx, "compute-matched", stages.sft(ctx, "compute-matched", base, human, matched), ctx.cfg.eval)

    pool = stages.decontaminate_problems(ctx, "pool", ctx.pool)  # no pool problem overlaps a test item
    self_train(ctx, "", init, base, human, pool, sec.curriculum)
    if sec.curriculum is not None and sec.curriculum.control:
        self_train(ctx, FLAT, init, base, human, pool, None)  # the control: every level from the start


def self_train(ctx: stages.RunContext[RestEMConfig], prefix: str, init: stages.Artifact, base: stages.Artifact,
               human: stages.Rows, pool: list, curriculum: CurriculumConfig | None) -> None:
    """Steps 1-5, `iterations` times; with a curriculum (Lee et al. 2025), each E-step
    samples the levels up to the hardest reached, and the next level joins once the
    E-step solves enough of the hardest."""
    sec = ctx.cfg.rest_em
    accept, audit = acceptance(ctx, sec.filter)
    hardest = stages.first_level(ctx, ctx.human, curriculum) if curriculum else None
    policy, kept = base, None
    for t in range(1, sec.iterations + 1):
        it = stages.group("iter", t, prefix)
        problems = stages.curriculum_pool(ctx, it, pool, hardest, curriculum) if curriculum else pool
        # step 1 (E-step): K samples per pool problem from the current policy
        samples = stages.generate(ctx, it, policy, problems, sec.e_step)
        # step 2 (E-step): the binary verifier (or, without one, majority voting) scores every sample
        scores = stages.score(ctx, it, samples, problems, accept)
        # step 3 (E-step): correct samples only, at most N per problem, no duplicates, none
        # overlapping an evaluation set (not in the paper: decontamination)
        kept = stages.select(ctx, it, scores, problems, sec.select, audit=audit, previous=kept)
        kept = stages.decontaminate(ctx, it, kept, ("prompt", "completion"))
        if curriculum:  # the next level joins when the hardest is solved often enough
            hardest = stages.next_level(ctx, it, scores, problems, hardest, curriculum, pool)
        # step 4 (M-step): fine-tune on the kept samples, from the base (paper) or previous model
        start = {"base": base, "previous": policy, "init": init}[sec.start_from]
        policy = stages.sft(ctx, it, start, kept + human if sec.mix_human else kept, sec.m_step)
        # step 5: evaluate the new policy on the held-out test set
        stages.evaluate(ctx, it, policy, ctx.cfg.eval)


FLAT = "flat-"
"""Group prefix of the curriculum's control: the same loop on the whole pool."""


def acceptance(ctx: stages.RunContext[RestEMConfig], cfg: FilterConfig) -> tuple[Any, Any]:
    """What accepts E-step samples (the task's verifier, or majority voting), and the grader
    that audits the kept samples when it is not the verifier."""
    if cfg.kind == "verifier":
        return ctx.task.verifier(), None
    read = getattr(ctx.grader, "extract", None)
    if read is None:
        raise ConfigError(f"rest_em.filter: majority voting reads final answers, which the task {ctx.task.name!r}'s grader "
                          f"({type(ctx.grader).__name__}) does not do")
    return MajorityVote(read, cfg.min_agreement, cfg.length_tolerance), ctx.grader


BASELINES = {"sft": "SFT on human data", "compute-matched": "SFT on human data, compute-matched"}


def _seconds(run: RunDir, group: str) -> dict[str, float]:
    records = {s: run.record(f"{group}/{s}") for s in ("build", "generate", "score", "select", "train", "evaluate")}
    return {s: r.seconds for s, r in records.items() if r is not None}


def collect(run: RunDir, cfg: RestEMConfig) -> dict[str, Any]:
    """Per baseline and per iteration: test metrics, E-step counts, training, seconds."""
    sec = cfg.rest_em
    k, its, sft_steps = sec.iterations, sec.m_step.steps, sec.sft.steps if sec.sft else 0
    steps = {"sft": sft_steps, "compute-matched": sft_steps + k * its}
    labels = BASELINES if sec.sft else {**BASELINES, "sft": "start model (no SFT)",
                                         "compute-matched": "SFT on human data, compute-matched"}
    rows: list[dict[str, Any]] = []
    for group, label in labels.items():
        test = stages.evaluation(run, group)
        if test is not None:
            rows.append({"group": group, "label": label, "kind": "baseline", "train_steps_total": steps[group],
                         "test": test, "seconds": _seconds(run, group)})
    loops = [("", "rest-em", "ReST-EM" + (" + curriculum" if sec.curriculum else ""))]
    if sec.curriculum is not None and sec.curriculum.control:
        loops.append((FLAT, "flat", "ReST-EM (no curriculum)"))
    for prefix, kind, name in loops:
        for t in range(1, k + 1):
            group = stages.group("iter", t, prefix)
            test = stages.evaluation(run, group)
            if test is None:
                continue
            score, select, train, schedule = (run.record(f"{group}/{s}") for s in ("score", "select", "train", "curriculum"))
            total = {"previous": sft_steps + t * its, "base": sft_steps + its, "init": its}[sec.start_from]
            rows.append({"group": group, "label": f"{name} iteration {t}", "kind": kind, "iteration": t,
                         "train_steps_total": total,
                         "estep": {**(score.info if score else {}), **(select.info if select else {})},
                         **({"curriculum": schedule.info} if schedule else {}),
                         "train": train.info if train else {}, "test": test,
                         "seconds": _seconds(run, group)})
    return {"name": cfg.name, "method": cfg.method, "seed": cfg.seed, "start_from": sec.start_from, "rows": rows,
            "filter": sec.filter.kind,
            "stage_seconds_total": round(sum(sum(r["seconds"].values()) for r in rows) + sum(_seconds(run, "init").values()), 1)}


def summary(metrics: dict[str, Any]) -> list[str]:
    return [f"{r['label']:<40} accuracy {r['test']['accuracy'] * 100:5.1f}%  " + pct_cells(r["test"]["by_bucket"])
            + (f"  unjudged {r['test']['unjudged']} ({r['test']['unjudged_share']:.1%})" if r["test"].get("unjudged") else "")
            for r in metrics["rows"]]


def render(metrics: dict[str, Any]) -> str:
    """The ReST-EM page: the table, accuracy by iteration against both baselines, per bucket."""
    rows = metrics["rows"]
    buckets = sorted({b for r in rows for b in r["test"]["by_bucket"]}, key=lambda b: (len(b), b))
    k_names = sorted(
        {m for r in rows for m in r["test"] if re.fullmatch(r"(pass|maj)@\d+", m)},
        key=lambda m: (m.startswith("maj"), int(m.split("@")[1])),
    )
    its = [r for r in rows if r["kind"] == "rest-em"]
    schedule_chart, schedule_list = _schedule([r for r in its if "curriculum" in r])
    title = f"selftrain: {escape(str(metrics['name']))} (seed {metrics['seed']})"
    return page(title, f"""<p>Method {escape(str(metrics['method']))}, each iteration fine-tuned from <b>{escape(str(metrics['start_from']))}</b>.
Accuracy is greedy decoding on the held-out test set; pass@k (unbiased) and maj@k from k samples per test problem.
Stage seconds in all: {metrics['stage_seconds_total']}.</p>
{_table(rows, buckets, k_names)}
<div class="charts">{''.join(_charts(rows, buckets, k_names) + schedule_chart)}</div>
{_estep(its)}{schedule_list}""")


def _table(rows: list[dict[str, Any]], buckets: list[str], k_names: list[str]) -> str:
    """One line per model: train steps, accuracy (all, by bucket), pass@k, maj@k, the E-step's counts."""
    head = ["", "train steps", "accuracy %"] + [f"{b}-digit %" if b.isdigit() else f"{b} %" for b in buckets]
    audited = any("truly_right" in r.get("estep", {}) for r in rows)
    unjudged = any(r["test"].get("unjudged") for r in rows)
    head += [f"{m} %" for m in k_names] + (["unjudged (not in accuracy)"] if unjudged else []) + ["samples", "accepted", "kept"]
    head += (["kept truly right %"] if audited else []) + ["seconds"]
    body = []
    for r in rows:
        e = r.get("estep", {})
        cells = [r["label"], r["train_steps_total"], pct(r["test"]["accuracy"])]
        cells += [pct(r["test"]["by_bucket"].get(b)) for b in buckets]
        cells += [pct(r["test"].get(m)) for m in k_names]
        if unjudged:
            t = r["test"]
            cells.append(f"{t['unjudged']} ({pct(t['unjudged_share'])}%): " + escape(", ".join(t["unjudged_reasons"]))
                         if t.get("unjudged") else "0")
        cells += [e.get("samples", ""), e.get("correct", ""), e.get("kept", "")]
        if audited:
            cells.append(pct(e["truly_right"] / e["kept"]) if e.get("kept") else "")
        body.append(cells + [f"{sum(r['seconds'].values()):.0f}"])
    return table(head, body)


def _charts(rows: list[dict[str, Any]], buckets: list[str], k_names: list[str]) -> list[str]:
    """Accuracy by iteration against both baselines, by bucket, the control's, pass@k and maj@k."""
    base = {r["group"]: r for r in rows if r["kind"] == "baseline"}
    its = [r for r in rows if r["kind"] == "rest-em"]
    flat = [r for r in rows if r["kind"] == "flat"]
    if "sft" not in base:
        return []
    xs = [0] + [r["iteration"] for r in its]
    sft_test = base["sft"]["test"]

    def by_bucket(loop: list[dict[str, Any]]) -> list[tuple[str, list, str]]:
        return [(f"{b}-digit" if b.isdigit() else b, [sft_test["by_bucket"].get(b)] + [r["test"]["by_bucket"].get(b) for r in loop],
                 PALETTE[i % len(PALETTE)]) for i, b in enumerate(buckets)]

    short = {"sft": "SFT on human data", "compute-matched": "compute-matched SFT"}
    hl = [(short[g], base[g]["test"]["accuracy"], "#555" if g == "sft" else "#d62728") for g in base]
    charts = [line_chart("Test accuracy (greedy)", xs, [("ReST-EM", [sft_test["accuracy"]] + [r["test"]["accuracy"] for r in its],
                                                         "#1f77b4")], hl)]
    series = by_bucket(its)
    cm = base["compute-matched"]["test"]["by_bucket"] if "compute-matched" in base else {}
    hl = [(f"{name}, compute-matched", cm[b], color) for (name, _, color), b in zip(series, buckets) if b in cm]
    charts.append(line_chart("Test accuracy by bucket (dashed: compute-matched baseline)", xs, series, hl))
    if flat:
        charts.append(line_chart("Control: no curriculum, the whole pool (by bucket)", [0] + [r["iteration"] for r in flat],
                                 by_bucket(flat)))
    series = [(m, [sft_test.get(m)] + [r["test"].get(m) for r in its], PALETTE[i % len(PALETTE)]) for i, m in enumerate(k_names)]
    charts.append(line_chart("pass@k and maj@k on the test set", xs, series))
    return charts


def _estep(its: list[dict[str, Any]]) -> str:
    """The E-step of each iteration in words."""
    if not its:
        return ""
    lines = "".join(
        f"<li>iteration {r['iteration']}: {r['estep'].get('correct', '?')} of {r['estep'].get('samples', '?')} samples accepted, "
        f"{r['estep'].get('problems_solved', '?')} problems solved, {r['estep'].get('kept', '?')} kept "
        f"(by bucket: {escape(', '.join(f'{b}: {n}' for b, n in r['estep'].get('kept_by_bucket', {}).items()))})</li>"
        for r in its
    )
    return f"<h2>E-step</h2><ul>{lines}</ul>"


def _schedule(schedule: list[dict[str, Any]]) -> tuple[list[str], str]:
    """The curriculum's part of the page: the E-step's solve rate by level, and the schedule."""
    if not schedule:
        return [], ""
    levels = sorted({int(level) for r in schedule for level in r["curriculum"]["solve_rate"]})
    series = [(f"level {level}", [r["curriculum"]["solve_rate"].get(str(level)) for r in schedule], PALETTE[i % len(PALETTE)])
              for i, level in enumerate(levels)]
    chart = line_chart("E-step solve rate by level (the curriculum's signal)", [r["iteration"] for r in schedule], series,
                       x_label="iteration")
    items = "".join(
        f"<li>iteration {r['iteration']}: levels up to {r['curriculum']['hardest']} ({r['curriculum']['problems']} problems), "
        f"solve rate at level {r['curriculum']['hardest']}: {pct(r['curriculum']['solve_rate'].get(str(r['curriculum']['hardest'])))}% "
        f"&rarr; {'level ' + str(r['curriculum']['next']) + ' joins' if r['curriculum']['next'] > r['curriculum']['hardest'] else 'no new level'}</li>"
        for r in schedule)
    return [chart], f"<h2>Level schedule</h2><ul>{items}</ul>"


def plan(cfg: RestEMConfig, sizes: dict[str, int]) -> list[tuple[str, int, int]]:
    """What the run samples: (stage, sequences, most new tokens each)."""
    sec, ev = cfg.rest_em, cfg.eval
    evaluate = lambda group: (f"{group}/evaluate", sizes["test"] * (1 + ev.k), ev.max_new_tokens)  # noqa: E731
    out = [evaluate("sft")] + ([evaluate("compute-matched")] if sec.compute_matched_baseline else [])
    for t in range(1, sec.iterations + 1):
        out += [(f"{stages.group('iter', t)}/generate", sizes["pool"] * sec.e_step.k, sec.e_step.max_new_tokens),
                evaluate(stages.group("iter", t))]
    return out


METHOD = Method("rest-em", RestEMConfig, run, collect, render, summary, plan=plan,
                needs=lambda cfg: [("model.sampler", cfg.model.sampler, {"local"})], demo=lambda seed: RestEMConfig(seed=seed),
                final_model=lambda cfg: stages.group("iter", cfg.rest_em.iterations))
