"""The model makes its own problems, solves them, and improves: a batch loop after STP
(arXiv 2502.00212), SGS (2604.20209), R-Zero (2508.05004) and Absolute Zero (2505.03335),
with the answers computed by the task's oracle, never voted.

    0. p_0 = SFT(init, human worked solutions); then SFT(p_0, the proposer's format on the
       seed problems + the human worked solutions)
    for t = 1 .. T:
        1. propose: p_{t-1} writes N problems, each request showing `shots` examples (the
           problems the last band kept; the seed problems until then)
        2. ground truth: the task's oracle computes each answer; malformed, out of bounds,
           duplicate (MinHash), contaminated and oracle-failed problems dropped with reasons
        3. solve: K samples per problem from p_{t-1}, graded against the oracle's answers
        4. band: keep the problems whose pass rate lies in [low, high] (barely solvable)
        5. train: p_t = SFT(p_{t-1}, its right solutions of the kept problems (at most N per
           problem) + the proposer's requests that led to kept problems, as written)
        6. evaluate p_t on the held-out test set; the collapse indicators from 1-4

Run it:  `selftrain run configs/arithmetic-own-problems.yaml`  (docs/own-problems.md)

Deviations, each a config choice: one model plays both roles with two prompt formats (STP
trains one model as conjecturer and prover); the proposer is trained by expert iteration on
the kept problems (R-Zero and SGS use RL with a learnability reward); the band is on the pass
rate of K samples, not a percentile of target problems (SGS); step 0 teaches the proposer's
format on the seed problems after the solutions (together from the start, the tiny model
never learned to add: docs/own-problems.md), which a pretrained model would follow few-shot.
Controls run from the same p_0: `random` (an equal-size random subset of the valid problems
in place of the band), `prompted` (p_0 writes every iteration's problems, never trained:
R-Zero's untrained proposer; the solver trains as in step 5), and SFT on the human data for
as many steps (`compute_matched_baseline`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from selftrain import stages
from selftrain.artifacts import RunDir
from selftrain.config import Generation, Sampling, SelectConfig, TaskRun, TrainConfig, _Section
from selftrain.methods import Method
from selftrain.report import PALETTE, escape, line_chart, page, pct, table
from selftrain.stages import own_problems as own


class Proposing(Sampling):
    """Step 1: the problems the model writes each iteration."""

    n: int = Field(2000, ge=1)
    """Requests per iteration (one problem each, before the filters of step 2)."""
    shots: int = Field(1, ge=1)
    """Examples shown per request, one per line; the model writes the next line."""
    temperature: float = Field(1.0, ge=0.0)
    max_new_tokens: int = Field(24, ge=1)
    stop: list[str] = ["\n"]
    near_duplicate: float = Field(0.9, gt=0.0, le=1.0)
    """Step 2: MinHash Jaccard similarity at which a problem is a near-duplicate of an earlier one."""
    oracle_timeout: float = Field(30.0, gt=0.0)
    """Step 2: seconds the task's oracle may take for a batch of problems (a hang costs its own items)."""


class Band(_Section):
    """Step 4: the problems kept, by their pass rate over step 3's K samples."""

    low: float = Field(0.25, ge=0.0, le=1.0)
    """The lowest pass rate kept."""
    high: float = Field(0.75, ge=0.0, le=1.0)
    """Kept when low <= pass rate <= high: with K = 4, 1 to 3 right (R-Zero keeps 0.3-0.8; STP
    under 25%; SGS up to the target problems' 70th percentile)."""

    @model_validator(mode="after")
    def _order(self) -> Band:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class OwnProblemsSection(_Section):
    """The model makes its own problems (STP, SGS, R-Zero, Absolute Zero)."""

    iterations: int = Field(10, ge=1)
    """Iterations of steps 1-6."""
    sft: TrainConfig | None = TrainConfig(steps=1500, learning_rate=1e-3)
    """Step 0: SFT on the human worked solutions; None: none (a pretrained model)."""
    proposer_format: TrainConfig | None = TrainConfig(steps=150, learning_rate=5e-4)
    """Step 0, then: SFT on the proposer's format (requests of seed problems, each completed by
    another) and the human worked solutions; None: none (a pretrained model proposes few-shot)."""
    proposer_rows: int | None = Field(None, ge=1)
    """Step 0: proposer-format rows from the seed problems (None: as many as worked solutions)."""
    propose: Proposing = Proposing()
    solve: Generation = Generation(k=4, temperature=0.7, max_new_tokens=12)
    """Step 3: K samples per problem."""
    band: Band = Band()
    select: SelectConfig = SelectConfig(max_per_problem=1)
    """Step 5: the right solutions kept per kept problem."""
    train: TrainConfig = TrainConfig(steps=150, learning_rate=5e-4)
    """Step 5: each iteration's SFT, from the previous model."""
    train_proposer: bool = True
    """Step 5: train the proposer on the requests that led to kept problems (False: R-Zero's
    untrained proposer, p_0 writing every iteration's problems; the `prompted` control)."""
    mix_human: bool = False
    """Step 5: add the human worked solutions to every update (against forgetting)."""
    compute_matched_baseline: bool = True
    """Also SFT on the human data from the SFT model for as many steps as the proposer's format
    and all iterations together."""
    controls: list[Literal["random", "prompted"]] = []
    """Loops run beside the method from the same p_0, reported with it: `random` (an
    equal-size random subset of the valid problems instead of the band), `prompted` (the
    proposer not trained)."""


class OwnProblemsConfig(TaskRun):
    """The model makes its own problems; the defaults are the miniature's
    (`configs/arithmetic-own-problems.yaml` sets its task)."""

    name: str = "own-problems"
    method: Literal["own-problems"] = "own-problems"
    own_problems: OwnProblemsSection = OwnProblemsSection()

    @model_validator(mode="after")
    def _oracle(self) -> OwnProblemsConfig:
        from selftrain.tasks import task_class, task_settings

        if getattr(task_settings(self.task), "oracle", "") is None:
            raise ValueError(f"task.{self.task.name}.oracle: own-problems computes the answers of the problems the model "
                             "writes: set oracle: expression (and columns.expression for the seed problems)")
        if not task_class(self.task.name).has_oracle():
            raise ValueError(f"task.name: the task {self.task.name!r} has no oracle: own-problems needs one to compute the "
                             "answers of the problems the model writes (Task.oracle; built-in: arithmetic, dataset with "
                             "`oracle: expression`, deduction)")
        return self


def run(ctx: stages.RunContext[OwnProblemsConfig]) -> None:
    """Own problems, steps numbered as in the docstring."""
    sec = ctx.cfg.own_problems
    # step 0: the initial model, SFT on the human worked solutions, then the proposer's format
    init = stages.start_model(ctx, ctx.cfg.model)
    seeds = [ctx.task.written(p) for p in ctx.human]
    human = stages.human_rows(ctx)
    sft = stages.sft(ctx, "sft", init, human, sec.sft) if sec.sft else init
    stages.evaluate(ctx, "sft", sft, ctx.cfg.eval)
    base = sft
    if sec.proposer_format:
        writing = own.seed_rows(seeds, sec.proposer_rows or len(seeds), sec.propose.shots, ctx.seed("proposer-rows"))
        base = stages.sft(ctx, "proposer-format", sft, human + writing, sec.proposer_format)
    if sec.compute_matched_baseline:
        steps = sec.train.steps * sec.iterations + (sec.proposer_format.steps if sec.proposer_format else 0)
        matched = sec.train.model_copy(update={"steps": steps})
        stages.evaluate(ctx, "compute-matched", stages.sft(ctx, "compute-matched", sft, human, matched), ctx.cfg.eval)
    self_play(ctx, "", base, human, seeds)
    for control in sec.controls:
        self_play(ctx, f"{control}-", base, human, seeds, random_band=control == "random",
                  train_proposer=sec.train_proposer and control != "prompted")


def self_play(ctx: stages.RunContext[OwnProblemsConfig], prefix: str, policy: stages.Artifact, human: stages.Rows,
              seeds: list[str], random_band: bool = False, train_proposer: bool | None = None) -> None:
    """Steps 1-6, `iterations` times from `policy`; groups `<prefix>iter-NN`."""
    sec = ctx.cfg.own_problems
    train_proposer = sec.train_proposer if train_proposer is None else train_proposer
    kept, made, start, solved = None, [], policy, None
    for t in range(1, sec.iterations + 1):
        it = stages.group("iter", t, prefix)
        # step 1: the model writes N problems, few-shot from the last kept problems (the seeds at first);
        # a proposer never trained is p_0 in every iteration (R-Zero's untrained proposer)
        writer = policy if train_proposer else start
        proposed = own.propose(ctx, it, writer, seeds, kept, sec.propose.n, sec.propose.shots, sec.propose.params())
        # step 2: the oracle's answers; malformed, duplicate, contaminated, failed problems dropped with reasons
        problems = own.ground_truth(ctx, it, proposed, seeds, made, sec.propose.near_duplicate, sec.propose.oracle_timeout)
        made.append(problems)
        # step 3: K solutions per problem, graded against the oracle's answers
        valid = own.load_problems(problems)
        samples = stages.generate(ctx, it, policy, valid, sec.solve)
        scores = stages.score(ctx, it, samples, valid, ctx.task.verifier())
        # step 4: the barely solvable (or, the random control, as many drawn at random)
        kept = own.band(ctx, it, scores, problems, sec.band.low, sec.band.high, control=random_band)
        # step 5: the solver on its right solutions of the kept problems; the proposer on what led to them
        solved = stages.select(ctx, it, scores, own.kept_problems(kept), sec.select, previous=solved)
        rows = stages.decontaminate(ctx, it, solved, ("prompt", "completion"))
        if train_proposer:
            rows = rows + own.proposer_rows(ctx, proposed, kept)
        policy = stages.sft(ctx, it, policy, rows + human if sec.mix_human else rows, sec.train)
        # step 6: evaluate; the collapse indicators are steps 1-4's records
        stages.evaluate(ctx, it, policy, ctx.cfg.eval)


# --- report ---------------------------------------------------------------------------

LOOPS = {"": "own problems", "random-": "random subset (control)", "prompted-": "untrained proposer (control)"}
BASELINES = {"sft": "SFT on human data", "compute-matched": "SFT on human data, compute-matched"}


def collect(run: RunDir, cfg: OwnProblemsConfig) -> dict[str, Any]:
    """Per baseline and per iteration of each loop: test metrics, and steps 1-5's records."""
    sec = cfg.own_problems
    rows: list[dict[str, Any]] = []
    for group, label in BASELINES.items():
        test = stages.evaluation(run, group)
        if test is not None:
            label = label if sec.sft or group != "sft" else "the start model (no SFT)"
            rows.append({"group": group, "label": label, "kind": "baseline", "test": test})
    for prefix in [""] + [f"{c}-" for c in sec.controls]:
        for t in range(1, sec.iterations + 1):
            group = stages.group("iter", t, prefix)
            test = stages.evaluation(run, group)
            if test is None:
                continue
            steps = {s: run.record(f"{group}/{s}") for s in ("propose", "ground-truth", "score", "band", "select", "train")}
            rows.append({"group": group, "label": f"{LOOPS[prefix]} iteration {t}", "kind": prefix or "method",
                         "iteration": t, "test": test, **{s: r.info for s, r in steps.items() if r is not None},
                         "seconds": round(sum(r.seconds for r in steps.values() if r is not None), 1)})
    return {"name": cfg.name, "method": cfg.method, "seed": cfg.seed, "band": sec.band.model_dump(), "rows": rows}


def summary(metrics: dict[str, Any]) -> list[str]:
    out = []
    for r in metrics["rows"]:
        band = r.get("band", {})
        extra = f"  kept {band['kept']} of {band['problems']}" if band else ""
        out.append(f"{r['label']:<42} accuracy {r['test']['accuracy'] * 100:5.1f}%  " +
                   "  ".join(f"{b}: {v * 100:5.1f}" for b, v in sorted(r["test"]["by_bucket"].items(), key=lambda kv: (len(kv[0]), kv[0])))
                   + extra)
    return out


def render(metrics: dict[str, Any]) -> str:
    """The own-problems page: accuracy by size per iteration against the baselines; the band's
    counts and the collapse indicators per iteration; the controls beside the method."""
    rows = metrics["rows"]
    buckets = sorted({b for r in rows for b in r["test"]["by_bucket"]}, key=lambda b: (len(b), b))
    head = ["", "accuracy %"] + [f"{b} %" for b in buckets] + ["written", "valid %", "duplicate %", "kept (band)", "by level",
                                                               "trained rows"]
    body = []
    for r in rows:
        gt, band, train = r.get("ground-truth", {}), r.get("band", {}), r.get("train", {})
        body.append([r["label"], pct(r["test"]["accuracy"]), *[pct(r["test"]["by_bucket"].get(b)) for b in buckets],
                     gt.get("written", ""), pct(gt.get("valid_share")), pct(gt.get("duplicate_share")),
                     f"{band['kept']} of {band['problems']}" if band else "",
                     escape(", ".join(f"{k}: {v}" for k, v in band.get("kept_by_level", {}).items())), train.get("examples", "")])
    loops = {}
    for r in rows:
        if r["kind"] != "baseline":
            loops.setdefault(r["kind"], []).append(r)
    method = loops.get("method", [])
    xs = [r["iteration"] for r in method]
    charts = []
    if method:
        charts.append(line_chart("Test accuracy by size (own problems)", xs, [
            (b, [r["test"]["by_bucket"].get(b) for r in method], PALETTE[i % len(PALETTE)]) for i, b in enumerate(buckets)],
            x_label="iteration"))
        charts.append(line_chart("Collapse indicators (shares of what the proposer wrote)", xs, [
            ("valid", [r.get("ground-truth", {}).get("valid_share") for r in method], "#1f77b4"),
            ("duplicate", [r.get("ground-truth", {}).get("duplicate_share") for r in method], "#d62728"),
            ("distinct / written", [r.get("ground-truth", {}).get("distinct_written", 0) / max(r.get("ground-truth", {}).get("written", 1), 1)
                                    for r in method], "#2ca02c"),
            ("in band / valid", [r.get("band", {}).get("in_band", 0) / max(r.get("band", {}).get("problems", 1), 1) for r in method],
             "#9467bd")], x_label="iteration"))
        levels = sorted({lv for r in method for lv in r.get("ground-truth", {}).get("by_level", {})}, key=int)
        if levels:
            charts.append(line_chart("Problems written by level (valid)", xs, [
                (f"level {lv}", [r.get("ground-truth", {}).get("by_level", {}).get(lv, 0) for r in method], PALETTE[i % len(PALETTE)])
                for i, lv in enumerate(levels)], x_label="iteration"))
    for kind, got in loops.items():
        if kind != "method":
            charts.append(line_chart(f"{LOOPS[kind]}: test accuracy (method dashed by overall)", [r["iteration"] for r in got],
                                     [("control", [r["test"]["accuracy"] for r in got], "#7f7f7f"),
                                      ("own problems", [r["test"]["accuracy"] for r in method[:len(got)]], "#1f77b4")],
                                     x_label="iteration"))
    band = metrics["band"]
    return page(f"selftrain: {escape(str(metrics['name']))} (seed {metrics['seed']})", f"""<p>The model writes its own
problems; the task's oracle computes their answers; the problems solved {band['low']:.0%} to {band['high']:.0%} of the time
are kept and the model trains on its right solutions of them, and on the requests that led to them. Accuracy is greedy on
the held-out test set. "Valid": what the oracle answered and no filter dropped; "by level": the kept problems' sizes.</p>
{table(head, body)}
<div class="charts">{''.join(charts)}</div>""")


def plan(cfg: OwnProblemsConfig, sizes: dict[str, int]) -> list[tuple[str, int, int]]:
    """What the run samples at most (every proposal valid): (stage, sequences, new tokens each)."""
    sec, ev = cfg.own_problems, cfg.eval
    evaluate = lambda group: (f"{group}/evaluate", sizes["test"] * (1 + ev.k), ev.max_new_tokens)  # noqa: E731
    out = [evaluate("sft")] + ([evaluate("compute-matched")] if sec.compute_matched_baseline else [])
    for prefix in [""] + [f"{c}-" for c in sec.controls]:
        for t in range(1, sec.iterations + 1):
            it = stages.group("iter", t, prefix)
            out += [(f"{it}/propose", sec.propose.n, sec.propose.max_new_tokens),
                    (f"{it}/generate", sec.propose.n * sec.solve.k, sec.solve.max_new_tokens), evaluate(it)]
    return out


METHOD = Method("own-problems", OwnProblemsConfig, run, collect, render, summary, plan=plan,
                needs=lambda cfg: [("model.sampler", cfg.model.sampler, {"local"})],
                final_model=lambda cfg: stages.group("iter", cfg.own_problems.iterations))
