"""Why DPO did or did not help the Self-Rewarding miniature: one M1, the grader's pairs, five
losses (docs/self-rewarding.md records the results).

    python experiments/dpo_arms.py --seed 0 [--data-seed 999] [--lr 5e-5 5e-4] [--out runs/dpo-arms-0]

From the miniature's M1 (`selftrain demo --method self-rewarding`'s settings, on a problem set
drawn with `--data-seed`, not the demo's, so that nothing is chosen on the demo's test
problems), M1 answers every pool problem 8 times (T = 0.7, top-p 0.9); the exact check picks
one right answer against one wrong per problem (the Iterative RPO condition). From M1, for
≤ 2 epochs over those pairs, each arm trains with TRL's DPOTrainer and is evaluated greedily
on the test problems:

- `rft`: the NLL of the chosen alone (`loss_type: sft`), the control: rejection-sampling
  fine-tuning on the same right answers;
- `dpo+nll1`, `dpo+nll4`: DPO (sigmoid) plus the NLL of the chosen at weight 1 and 4
  (Iterative RPO, Pang et al. 2024);
- `apo_zero+nll1`: TRL's anchored loss (D'Oosterlinck et al. 2024) plus the NLL;
- `step+nll1`: step-level pairs (Step-DPO, Lai et al. 2024): the prompt is the problem and the
  columns both answers share, chosen and rejected the first column where they part; no
  end-of-sequence token is trained.

With `--restart`, also the restart measurement: SFT from M1 on the very worked solutions it
was trained on, 40 steps, at batch 16 / 64, lr 5e-4 / 1e-4, cosine or constant: does
training M1 again cost accuracy by itself?

Prints one row per arm and learning rate: greedy accuracy overall and by size, and TRL's
last logged rewards/chosen and logps/chosen (a falling chosen likelihood is displacement);
writes the rows to OUT/arms.json. The run folder resumes: a rerun skips what is done.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from selftrain import stages
from selftrain.artifacts import read_json, read_jsonl, write_json
from selftrain.config import DPOConfig, Generation, TrainConfig
from selftrain.methods.self_rewarding import demo_config
from selftrain.methods.self_rewarding.miniature import Miniature
from selftrain.records import Pair
from selftrain.tasks.arithmetic_judge import GraderAsJudge, truly_better

RESTARTS = [(16, 5e-4, "cosine"), (64, 5e-4, "cosine"), (64, 5e-4, "constant_with_warmup"), (64, 1e-4, "cosine")]
"""(batch size, learning rate, schedule) of the restart measurement."""

ARMS: dict[str, dict[str, Any]] = {
    "rft": {"loss_type": "sft"},
    "dpo+nll1": {"nll_weight": 1.0},
    "dpo+nll4": {"nll_weight": 4.0},
    "apo_zero+nll1": {"loss_type": "apo_zero", "nll_weight": 1.0},
    "step+nll1": {"nll_weight": 1.0},
}


def first_step_rows(pair: Pair) -> dict[str, str]:
    """A step-level pair: the problem and the columns both answers share as the prompt, the
    first column where they part as chosen and rejected (the final `A:` counts as a column).

    >>> first_step_rows(Pair("p", "0012+0034=", "2+4+0=06 1+3+0=04 A:46", "2+4+0=06 1+3+0=05 A:56", 5, 1))
    {'prompt': '0012+0034=2+4+0=06 ', 'chosen': '1+3+0=04', 'rejected': '1+3+0=05'}
    """
    chosen, rejected = pair.chosen.split(" "), pair.rejected.split(" ")
    i = next((i for i, (c, r) in enumerate(zip(chosen, rejected)) if c != r), min(len(chosen), len(rejected)) - 1)
    shared = "".join(step + " " for step in chosen[:i])
    return {"prompt": pair.prompt + shared, "chosen": chosen[i], "rejected": rejected[i]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-seed", type=int, default=999)
    ap.add_argument("--lr", type=float, nargs="+", default=[5e-5, 5e-4])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--restart", action="store_true", help="also measure SFT from M1 on its own human data")
    args = ap.parse_args()
    demo = demo_config(args.seed)
    cfg = demo.model_copy(update={
        "task": demo.task.model_copy(update={"arithmetic": demo.task.arithmetic.model_copy(update={"seed": args.data_seed})}),
        "self_rewarding": demo.self_rewarding.model_copy(update={
            "miniature": demo.self_rewarding.miniature.model_copy(update={"controls": []})})})
    out = args.out or Path(f"runs/dpo-arms-{args.seed}")

    rows: list[dict[str, Any]] = []
    with stages.open_run(cfg, out) as ctx:
        variant = Miniature(ctx)
        m1 = variant.m1()
        variant.evaluate("m1", m1)
        sec = cfg.self_rewarding
        responses = stages.generate(ctx, "arms", m1, ctx.pool, Generation(k=8, temperature=0.7, top_p=0.9,
                                                                           max_new_tokens=sec.responses.max_new_tokens),
                                    name="responses")
        scores = stages.score(ctx, "arms", responses, ctx.pool, GraderAsJudge(ctx.task.width))
        pairs = stages.pairs(ctx, "arms", scores, 5.0, check=lambda made: truly_better(made, ctx.pool))
        n_pairs = len(read_jsonl(pairs.path))
        steps = max(1, math.floor(args.epochs * n_pairs / args.batch_size))
        m1_eval = read_json(ctx.path("m1", "eval.json"))
        rows.append({"arm": "M1", "lr": None, "accuracy": m1_eval["accuracy"], "by_bucket": m1_eval["by_bucket"]})
        for lr in args.lr:
            for arm in args.arms:
                train = DPOConfig(steps=steps, batch_size=args.batch_size, learning_rate=lr, warmup_steps=5,
                                  logging_steps=max(1, steps // 4), **ARMS[arm])
                group = f"arm-{arm}-lr{lr:g}"
                step = arm.startswith("step")
                model = stages.dpo(ctx, group, m1, pairs, train, row=first_step_rows if step else stages.prompt_rows,
                                   open_ended=step)
                stages.evaluate(ctx, group, model, cfg.eval)
                got = read_json(ctx.path(group, "eval.json"))
                info = ctx.run.record(f"{group}/train").info
                rows.append({"arm": arm, "lr": lr, "accuracy": got["accuracy"], "by_bucket": got["by_bucket"],
                             **{k: info.get(k) for k in ("rewards_chosen", "logps_chosen", "logps_rejected", "reward_margin")}})
        for batch, lr, schedule in RESTARTS if args.restart else []:
            group = f"restart-b{batch}-lr{lr:g}-{schedule}"
            train = TrainConfig(steps=40, batch_size=batch, learning_rate=lr, warmup_steps=5, lr_scheduler=schedule)
            stages.evaluate(ctx, group, stages.sft(ctx, group, m1, stages.human_rows(ctx), train), cfg.eval)
            rows.append({"arm": f"sft b{batch} {schedule}", "lr": lr, **{k: read_json(ctx.path(group, "eval.json"))[k]
                                                                         for k in ("accuracy", "by_bucket")}})
    write_json(out / "arms.json", {"pairs": n_pairs, "steps": steps, "batch_size": args.batch_size, "rows": rows})
    print(f"{n_pairs} right-vs-wrong pairs, {steps} steps of {args.batch_size} (≤ {args.epochs:g} epochs); greedy accuracy "
          f"on {m1_eval['n_problems']} test problems (data seed {args.data_seed})")
    for r in rows:
        extra = "" if "rewards_chosen" not in r else (f"  rewards/chosen {r['rewards_chosen']}  logps/chosen {r['logps_chosen']}"
                                                      f"  logps/rejected {r['logps_rejected']}")
        lr = "" if r["lr"] is None else f"lr {r['lr']:g}"
        print(f"{r['arm']:<14} {lr:<9} accuracy {r['accuracy'] * 100:5.1f}%  {json.dumps(r['by_bucket'])}{extra}")


if __name__ == "__main__":
    main()
