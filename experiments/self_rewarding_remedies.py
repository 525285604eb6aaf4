"""The Self-Rewarding remedies measured on the miniature (docs/self-rewarding.md, "The remedies
for small models", records the results).

    python experiments/self_rewarding_remedies.py --seed 0 [--arms plain meta anchor ...] [--quick]

From one M1 per seed (the demo's: data-limited, trained until its validation accuracy stops
improving), every arm runs the loop's two iterations in the same run folder, its groups
prefixed by the arm's name (`meta-iter-01`, ...); M1 and its held-out judge pairs are shared
(the stages are reused by fingerprint). Beside each arm, the compute-matched SFT control for
its own steps (`sft-<arm>-iter-NN`); once per seed, the grader control (the plain loop with
the exact check making the pairs). Arms:

- `plain`: the shipped loop, NLL on the self-chosen answer of each pair (`dpo.loss_type: sft`);
- `meta`: + the meta-judge (judge pairs, at most 15% of the update);
- `anchor`: + anchored rejection (M0's worst response as the rejected);
- `eft`: + the EFT refresh (200 labelled pool problems a iteration; USES LABELS);
- `dpo`: DPO + NLL (weight 1) instead of the NLL alone, hard labels (CREAM's baseline);
- `cream`: `dpo` with CREAM's soft labels (M_{t-1} judging the same responses);
- `combo`: the remedies of the arms named by `--combo`, together (chosen by hand from the
  single arms' table), in groups `<a>+<b>-iter-NN`.

Prints one table (answer accuracy, judge accuracy, chosen truly right, update steps, what each
remedy did) and writes it to experiments/results/self_rewarding_remedies-seed<S>.txt.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from selftrain import stages
from selftrain.artifacts import RunDir
from selftrain.methods.self_rewarding import iterate
from selftrain.methods.self_rewarding.config import SelfRewardingConfig, demo_config
from selftrain.methods.self_rewarding.miniature import Miniature, controls, sft_control
from selftrain.methods.self_rewarding.report import model_rows, remedies_did

ARMS: dict[str, dict[str, Any]] = {
    "plain": {},
    "meta": {"meta_judge": {"share": 0.15}},
    "anchor": {"anchor": {"model": "m0"}},
    "eft": {"eft_refresh": {"problems": 200}},
    "dpo": {},
    "cream": {"consistency": {}},
}
CONTRASTIVE = {"dpo", "cream"}


def config(seed: int, arm: str, combo: list[str], quick: bool) -> SelfRewardingConfig:
    data = demo_config(seed).model_dump()
    sec = data["self_rewarding"]
    names = combo if arm == "combo" else [arm]
    sec["remedies"] = {k: v for name in names for k, v in ARMS[name].items()}
    if CONTRASTIVE & set(names):
        sec["dpo"].update(loss_type="sigmoid", nll_weight=1.0)
    if quick:
        sec["prompts"]["n"] = 60
        sec["miniature"]["sft"]["steps"] = 200
        sec["miniature"]["eval_pairs"] = 40
    return SelfRewardingConfig.model_validate(data)


def prefix(arm: str, combo: list[str] = ()) -> str:
    if arm == "combo":
        return "+".join(combo) + "-"
    return "" if arm == "plain" else f"{arm}-"


def run_arm(out: Path, seed: int, arm: str, combo: list[str], quick: bool) -> None:
    cfg = config(seed, arm, combo, quick)
    with stages.open_run(cfg, out) as ctx:
        variant = Miniature(ctx)
        m1 = variant.m1()
        variant.evaluate("m1", m1)
        iterate(ctx, variant, m1, prefix(arm, combo))
        if arm == "plain":
            controls(ctx, variant, m1, iterate)  # the grader control and the plain loop's matched SFT
        else:
            sft_control(ctx, variant, m1, prefix(arm, combo))


def table(out: Path, seed: int, arms: list[str], combo: list[str]) -> str:
    run = RunDir(out)
    cfg = config(seed, "plain", combo, quick=False)
    m1 = model_rows(run, cfg)[:1]
    m1_train = run.record("m1/train")
    lines = [f"M1: answer {m1[0]['test']['accuracy'] * 100:.1f}%  judge {m1[0]['judge_accuracy'] * 100:.1f}%  "
             f"(SFT kept step {m1_train.info.get('best_step')} of {m1_train.info.get('steps')}; validation accuracy "
             f"by step {m1_train.info.get('validation_accuracies')})" if m1 and m1[0]["group"] == "m1" else "M1: not done", ""]
    head = f"{'arm':<24}{'model':<6}{'answer %':>9}{'judge %':>9}{'chosen right %':>15}{'steps':>6}  what the remedies did"
    lines += [head, "-" * len(head)]
    for arm in arms + ["grader"]:
        label = "+".join(combo) if arm == "combo" else arm
        own = "grader-" if arm == "grader" else prefix(arm, combo)
        for kind, pre in ((label, own), (f"  sft ({label})", f"sft-{own}")):
            if arm == "grader" and kind != arm:
                continue
            for got in model_rows(run, cfg, pre):
                if got["group"] == "m1":
                    continue
                chosen = got.get("pairs", {}).get("chosen_truly_right")
                lines.append(f"{kind:<24}{got['label']:<6}{got['test']['accuracy'] * 100:>9.1f}{got['judge_accuracy'] * 100:>9.1f}"
                             f"{'' if chosen is None else f'{chosen * 100:.1f}':>15}{got.get('train', {}).get('steps', ''):>6}  "
                             + remedies_did(got))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", nargs="+", default=["plain", "meta", "anchor", "eft", "dpo", "cream"],
                    choices=[*ARMS, "combo"])
    ap.add_argument("--combo", nargs="+", default=["meta", "anchor"], choices=list(ARMS),
                    help="the arms whose remedies the `combo` arm runs together")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 60 prompts, M1 200 steps at most")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    out = args.out or Path(f"runs/sr-remedies-s{args.seed}{'-quick' if args.quick else ''}")
    for arm in args.arms:
        run_arm(out, args.seed, arm, args.combo, args.quick)
    text = table(out, args.seed, args.arms, args.combo)
    print(text)
    if not args.quick:
        tag = "" if "combo" not in args.arms else f"-{'+'.join(args.combo)}"
        results = Path(__file__).parent / "results" / f"self_rewarding_remedies-seed{args.seed}{tag}.txt"
        results.write_text(f"python experiments/self_rewarding_remedies.py --seed {args.seed} --arms {' '.join(args.arms)}"
                           f" --combo {' '.join(args.combo)}\n\n{text}\n")


if __name__ == "__main__":
    main()
