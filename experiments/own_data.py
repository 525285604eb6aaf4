"""What the model's own chosen answers add to the Self-Rewarding miniature
(docs/self-rewarding.md, "What the model's own answers add" records the results).

    python experiments/own_data.py scan --seed 0 [--human 1000|300] [--m1-lr 5e-4] [--second-check]
    python experiments/own_data.py loop --seed 0 [--prompts 1000] [--k 4] [--accumulate] [--arms self grader sft]

Development measurements: the problems are drawn with `task.arithmetic.seed: 999`, not the
demo's 1234, so that nothing is chosen on the demo's test problems. The miniature's
settings otherwise (`selftrain demo --method self-rewarding`); `--human 300` takes the
ReST-EM demo's data-limited regime instead: 300 worked solutions, mostly 2-3 digits (10%
4-digit), and 300 EFT rows.

`scan`: from one M1, one iteration of steps 1-3 (1,000 prompts written by M1, 4 responses
each, 3 self-judgements), then each variant trains from M1 (or M0) and is evaluated greedily
on the 501 test problems, with the judge's pairwise accuracy on the held-out pairs:

- `best`: the first response of each prompt the self-judge scored 5 (paired or not);
  `pairs`: the chosen of the shipped pairs (chosen 5, rejected at most 3);
  `gbest` / `gpairs`: the same picked by the exact grader (a perfect judge);
- `m1data`: M1's own SFT data (IFT, prompt writing, EFT): alone it is the compute-matched
  control, added to a set it is replay;
- `m0-...`: from M0 with M1's recipe (300 steps) instead of from M1: the same compute as M1.

`--second-check` also asks M1 a second inverse check per response (for `a+b=` answered s,
`s-a=`; for `a-b=` answered d, `a-d=`, both expecting b; 3 samples) and prints the precision
and recall of "scored 5" against the grader with one check and with both.

`loop`: two iterations of the data-limited regime (`--human 300`), the update being SFT from
M_t, 60 steps at lr 5e-4, on M1's data (replay) plus the best response of every prompt scored
5 (with `--accumulate`, of every iteration so far); arms: `self` (the model's own judge),
`grader` (the exact check in its place), `sft` (M1's data alone, the compute-matched control).

The run folders resume: a rerun reprints what is done.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from selftrain import stages
from selftrain.artifacts import fingerprint, read_json, read_jsonl
from selftrain.config import TrainConfig
from selftrain.methods.self_rewarding import SelfRewardingConfig, demo_config
from selftrain.methods.self_rewarding.miniature import Miniature
from selftrain.records import Problem, Sample, Score
from selftrain.samplers.base import SamplingParams
from selftrain.tasks.arithmetic import final_answer, operands
from selftrain.tasks.arithmetic_judge import rubric, shown_answer

DATA_SEED = 999
"""The development problem set (the demo's is 1234)."""


def config(seed: int, human: int, eft: int, m1_lr: float | None = None, prompts: int | None = None,
           k: int | None = None) -> SelfRewardingConfig:
    demo = demo_config(seed)
    sec = demo.self_rewarding
    task: dict[str, Any] = {"seed": DATA_SEED}
    if human != 1000:
        task.update(human_size=human, human_digits={1: .1, 2: .3, 3: .5, 4: .1})
    mini: dict[str, Any] = {"controls": [], "eft_size": eft}
    if m1_lr is not None:
        mini["sft"] = sec.miniature.sft.model_copy(update={"learning_rate": m1_lr})
    update: dict[str, Any] = {"miniature": sec.miniature.model_copy(update=mini)}
    if k is not None:
        update["responses"] = sec.responses.model_copy(update={"k": k})
    if prompts is not None:
        update["prompts"] = sec.prompts.model_copy(update={"n": prompts})
    return demo.model_copy(update={"task": demo.task.model_copy(update={"arithmetic": demo.task.arithmetic.model_copy(update=task)}),
                                   "self_rewarding": sec.model_copy(update=update)})


def build_m1(ctx: stages.RunContext) -> tuple[stages.Artifact, Miniature]:
    """The miniature's step 0 and M1 evaluated, as the method does it."""
    variant = Miniature(ctx)
    m1 = variant.m1()
    variant.evaluate("m1", m1)
    return m1, variant


def one_iteration(ctx: stages.RunContext, it: str, policy: stages.Artifact, grader: bool = False
                  ) -> tuple[list[Problem], list[Sample], list[Score], stages.Artifact]:
    """Steps 1-3 of the miniature: prompts written by `policy`, 4 responses each, judged by
    `policy` (or by the exact check with `grader`)."""
    variant = Miniature(ctx, pair_judge="grader" if grader else "self")
    new = variant.write_prompts(it, policy)
    responses = stages.generate(ctx, it, policy, new, ctx.cfg.self_rewarding.responses, name="responses")
    scores = variant.judge(it, policy, new, responses)
    return new, stages.load_samples(responses.path), stages.load_scores(scores.path), scores


def first_per_prompt(new: list[Problem], samples: list[Sample], keep) -> list[tuple[Problem, Sample]]:
    """The first response of each prompt that `keep(problem, sample, index)` accepts."""
    by, chosen = {p.id: p for p in new}, {}
    for i, s in enumerate(samples):
        if s.problem_id not in chosen and keep(by[s.problem_id], s, i):
            chosen[s.problem_id] = (by[s.problem_id], s)
    return list(chosen.values())


def as_rows(chosen: list[tuple[Problem, Sample]]) -> list[dict[str, str]]:
    return [{"prompt": p.prompt, "completion": s.completion} for p, s in chosen]


def right(p: Problem, s: Sample) -> bool:
    return final_answer(s.completion) == p.answer


def result(ctx: stages.RunContext, group: str) -> str:
    e, j = read_json(ctx.path(group, "eval.json")), read_json(ctx.path(group, "judge_eval.json"))
    sizes = " ".join(f"{b}:{v * 100:5.1f}" for b, v in sorted(e["by_bucket"].items()))
    return f"answer {e['accuracy'] * 100:5.1f}%  judge {j['judge_accuracy'] * 100:5.1f}%  (by size {sizes})"


def scan(args: argparse.Namespace) -> None:
    eft = 300 if args.human == 300 else 1000
    cfg = config(args.seed, args.human, eft, args.m1_lr)
    out = args.out or Path(f"runs/own-data-scan-s{args.seed}-h{args.human}-lr{args.m1_lr:g}")
    with stages.open_run(cfg, out) as ctx:
        sec = cfg.self_rewarding
        m0 = stages.sft(ctx, "m0", stages.start_model(ctx, cfg.model), stages.human_rows(ctx), sec.miniature.pretrain)
        m1, variant = build_m1(ctx)
        new, samples, scores, judged = one_iteration(ctx, "iter-01", m1)
        pairs = stages.pairs(ctx, "iter-01", judged, 5.0, max_rejected=3.0)
        by = {p.id: p for p in new}
        five = [s.value is not None and s.value >= 5 for s in scores]
        best = as_rows(first_per_prompt(new, samples, lambda p, s, i: five[i]))
        wrong_ids = {s.problem_id for s in samples if not right(by[s.problem_id], s)}
        right_first = first_per_prompt(new, samples, lambda p, s, i: right(p, s))
        gbest = as_rows(right_first)
        gpairs = as_rows([(p, s) for p, s in right_first if p.id in wrong_ids])
        paired = [{"prompt": r["prompt"], "completion": r["chosen"]} for r in read_jsonl(pairs.path)]
        m1rows = variant.data.load()
        best_right = sum(right(by[s.problem_id], s) for s, ok in zip(samples, five) if ok) / max(sum(five), 1)
        print(f"M1 {result(ctx, 'm1')}")
        print(f"iteration 1: {len(new)} prompts; best scored 5: {len(best)} prompts; responses scored 5 truly right: "
              f"{best_right * 100:.1f}%; pairs {len(paired)}; grader: a right response for {len(gbest)} prompts, "
              f"right and wrong for {len(gpairs)}")

        def short(lr: float) -> TrainConfig:
            return TrainConfig(steps=60, batch_size=64, learning_rate=lr, warmup_steps=10)

        variants = {
            "best-m1-60-5e-4": (m1, best, short(5e-4)),
            "pairs-m1-60-5e-4": (m1, paired, short(5e-4)),
            "gbest-m1-60-5e-4": (m1, gbest, short(5e-4)),
            "gpairs-m1-60-5e-4": (m1, gpairs, short(5e-4)),
            "m1-m1data-60-5e-4": (m1, m1rows, short(5e-4)),
            "m1-m1data+best-60-5e-4": (m1, m1rows + best, short(5e-4)),
            "m1-m1data+pairs-60-5e-4": (m1, m1rows + paired, short(5e-4)),
            "m1-m1data+gbest-60-5e-4": (m1, m1rows + gbest, short(5e-4)),
            "m1-m1data+gpairs-60-5e-4": (m1, m1rows + gpairs, short(5e-4)),
            "m1-m1data-300": (m1, m1rows, sec.miniature.sft),
            "m1-m1data+best-300": (m1, m1rows + best, sec.miniature.sft),
            "m0-m1data": (m0, m1rows, sec.miniature.sft),
            "m0-m1data+best": (m0, m1rows + best, sec.miniature.sft),
        }
        for name, (start, rows, train) in variants.items():
            if args.variants and name not in args.variants:
                continue
            group = f"v-{name}"
            model = stages.sft(ctx, group, start, stages.Rows(fingerprint(name, len(rows)), lambda rows=rows: rows), train)
            variant.evaluate(group, model)
            print(f"{name:26s} {len(rows):5d} rows, {train.steps:3d} steps  {result(ctx, group)}", flush=True)
        if args.second_check:
            second_check(ctx, m1, new, samples, scores)


def second_check(ctx: stages.RunContext, m1: stages.Artifact, new: list[Problem], samples: list[Sample],
                 scores: list[Score]) -> None:
    """Precision and recall of 'scored 5' with the shipped check, and with a second inverse
    check (expecting b) required to score 5 in all 3 samples too."""
    width, by = ctx.task.width, {p.id: p for p in new}
    asks, owner = [], []
    for i, s in enumerate(samples):
        shown = shown_answer(s.completion, width)
        if shown == "?":
            continue
        a, op, _ = operands(by[s.problem_id].prompt)
        asks += [f"{shown}-{a:0{width}d}=" if op == "+" else f"{a:0{width}d}-{shown}="] * 3
        owner += [i] * 3
    said = ctx.sampler(m1).generate(asks, SamplingParams(temperature=0.7, max_new_tokens=64), 7)
    second: dict[int, list[int]] = {}
    for i, text in zip(owner, said):
        second.setdefault(i, []).append(rubric(final_answer(text), operands(by[samples[i].problem_id].prompt)[2], width))
    counts: Counter = Counter()
    for i, s in enumerate(samples):
        one = scores[i].value is not None and scores[i].value >= 5
        both = one and min(second.get(i, [0])) == 5
        for name, ok in (("one check", one), ("two checks", both)):
            counts[name, ok, right(by[s.problem_id], s)] += 1
    for name in ("one check", "two checks"):
        tp, fp, fn = counts[name, True, True], counts[name, True, False], counts[name, False, True]
        print(f"{name}: {tp + fp} responses scored 5, precision {tp / max(tp + fp, 1) * 100:.1f}%, "
              f"recall {tp / max(tp + fn, 1) * 100:.1f}%")


def loop(args: argparse.Namespace) -> None:
    cfg = config(args.seed, 300, 300, prompts=args.prompts, k=args.k)
    out = args.out or Path(f"runs/own-data-loop-s{args.seed}-n{args.prompts}-k{args.k}{'-acc' if args.accumulate else ''}")
    update = TrainConfig(steps=60, batch_size=64, learning_rate=5e-4, warmup_steps=10)
    with stages.open_run(cfg, out) as ctx:
        m1, variant = build_m1(ctx)
        m1rows = variant.data.load()
        print(f"M1 {result(ctx, 'm1')}")
        for arm in args.arms:
            policy, kept = m1, []
            for t in (1, 2):
                it, note = f"{arm}-iter-{t:02d}", ""
                rows = m1rows
                if arm != "sft":
                    new, samples, scores, _ = one_iteration(ctx, it, policy, grader=arm == "grader")
                    five = [s.value is not None and s.value >= 5 for s in scores]
                    chosen = first_per_prompt(new, samples, lambda p, s, i, five=five: five[i])
                    truly = sum(right(p, s) for p, s in chosen)
                    kept = (kept if args.accumulate else []) + as_rows(chosen)
                    rows = m1rows + kept
                    note = f"  chosen {len(chosen)}, {truly / max(len(chosen), 1) * 100:.1f}% truly right"
                rows_fp = fingerprint(it, len(rows), True, args.accumulate)
                policy = stages.sft(ctx, it, policy, stages.Rows(rows_fp, lambda rows=rows: rows), update)
                variant.evaluate(it, policy)
                print(f"{it:16s} {result(ctx, it)}{note}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scan", help="one iteration from one M1, the update's data varied")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--human", type=int, choices=[1000, 300], default=1000)
    s.add_argument("--m1-lr", type=float, default=5e-4, help="M1's SFT learning rate (the demo: 5e-4)")
    s.add_argument("--variants", nargs="*", default=[])
    s.add_argument("--second-check", action="store_true")
    s.add_argument("--out", type=Path)
    s.set_defaults(run=scan)
    c = sub.add_parser("loop", help="two iterations in the data-limited regime, with replay")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--prompts", type=int, default=1000)
    c.add_argument("--k", type=int, default=4)
    c.add_argument("--accumulate", action="store_true")
    c.add_argument("--arms", nargs="+", default=["self", "grader", "sft"], choices=["self", "grader", "sft"])
    c.add_argument("--out", type=Path)
    c.set_defaults(run=loop)
    args = ap.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
