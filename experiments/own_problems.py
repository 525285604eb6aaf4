"""The own-problems miniature against its pre-registered bar (issue 35, docs/own-problems.md):
6-digit greedy accuracy >= 90% on seeds 0 and 1, with no problem from a pool, within 15
minutes a seed on two cores; beside SFT, compute-matched SFT, the untrained (prompted-only)
proposer, the random-subset control, and the curriculum that has a pool.

    python experiments/own_problems.py [--seeds 0 1] [--out runs/own-problems-study]
        [--curriculum 0=runs/cur-s0 1=runs/cur-s1]

Per seed: `selftrain run configs/arithmetic-own-problems.yaml --seed S` in a fresh folder,
timed (the bar's wall time: SFT, the compute-matched baseline and every iteration); then the
same config with `controls: [random, prompted]` in the same folder, which reuses every
finished stage and runs the two control loops from the same SFT model. The table, with the
curriculum's rows read from its run folder when given, goes to stdout and to
experiments/results/own_problems-seed<S>.txt.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "arithmetic-own-problems.yaml"
RESULTS = Path(__file__).resolve().parent / "results"


def run(config: Path, seed: int, out: Path) -> float:
    """`selftrain run` in a child process; its wall time in seconds."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "selftrain.cli", "run", str(config), "--seed", str(seed), "--out", str(out)],
                   check=True)
    return time.perf_counter() - t


def by_size(test: dict) -> list[str]:
    return [f"{test['by_bucket'].get(str(d), float('nan')) * 100:5.1f}" for d in range(1, 9)]


def table(metrics: dict, curriculum: dict | None) -> list[str]:
    """One line per row of the method's metrics (and the curriculum's iterations)."""
    lines = ["| | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 digits | valid / written | kept (band) | kept by digits |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in metrics["rows"]:
        gt, band = r.get("ground-truth", {}), r.get("band", {})
        lines.append(f"| {r['label']} | " + " | ".join(by_size(r["test"])) + " | "
                     + (f"{gt['valid']} / {gt['written']}" if gt else "") + " | "
                     + (f"{band['kept']} of {band['problems']}" if band else "") + " | "
                     + ", ".join(f"{k}: {v}" for k, v in band.get("kept_by_level", {}).items()) + " |")
    for r in (curriculum or {}).get("rows", []):
        if r["group"].startswith("iter-"):
            lines.append(f"| curriculum (with a pool) {r['group']} | " + " | ".join(by_size(r["test"])) + " | | | |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=Path("runs/own-problems-study"))
    ap.add_argument("--controls", nargs="*", default=["random", "prompted"])
    ap.add_argument("--curriculum", nargs="*", default=[], help="SEED=RUN: a configs/arithmetic-curriculum.yaml run folder")
    args = ap.parse_args()
    curricula = {int(s): Path(p) for s, p in (c.split("=", 1) for c in args.curriculum)}
    RESULTS.mkdir(exist_ok=True)
    for seed in args.seeds:
        out = args.out / f"seed{seed}"
        if out.exists():
            sys.exit(f"{out} exists: the method's wall time is measured from scratch; delete it or pick --out")
        wall = run(CONFIG, seed, out)
        if args.controls:
            cfg = yaml.safe_load(CONFIG.read_text())
            cfg["own_problems"]["controls"] = args.controls
            with_controls = args.out / f"seed{seed}-controls.yaml"
            with_controls.write_text(yaml.safe_dump(cfg, sort_keys=False))
            controls_wall = run(with_controls, seed, out)
        metrics = json.loads((out / "metrics.json").read_text())
        cur = curricula.get(seed)
        curriculum = json.loads((cur / "metrics.json").read_text()) if cur else None
        text = "\n".join([f"seed {seed}: the method (SFT, compute-matched SFT, {len([r for r in metrics['rows'] if r['kind'] == 'method'])} "
                          f"iterations) {wall:.0f} s wall" + (f"; the controls {controls_wall:.0f} s more" if args.controls else "")
                          + f" ({out})", *table(metrics, curriculum)])
        print(text)
        (RESULTS / f"own_problems-seed{seed}.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
