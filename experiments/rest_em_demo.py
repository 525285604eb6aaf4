"""The demo's claim, measured: ReST-EM against SFT on human data and the compute-matched
baseline, for seeds 0 and 1, with wall time per run.

    python experiments/rest_em_demo.py [--seeds 0 1] [--out runs/bench]

Each seed is `selftrain demo --seed S` in a fresh folder (a rerun reuses finished stages;
delete the folder to time it again).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = ap.parse_args()
    lines = []
    for seed in args.seeds:
        out = args.out / f"seed{seed}"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "selftrain.cli", "demo", "--seed", str(seed), "--out", str(out)], check=True)
        wall = time.perf_counter() - t
        rows = {r["group"]: r for r in json.loads((out / "metrics.json").read_text())["rows"]}
        last = max((g for g in rows if g.startswith("iter-")), key=lambda g: int(g[5:]))
        sft, cm, rest = (rows[g]["test"] for g in ("sft", "compute-matched", last))
        buckets = " ".join(f"{b}:{v * 100:.1f}" for b, v in rest["by_bucket"].items())
        lines.append(
            f"{seed:>4}  {sft['accuracy'] * 100:6.1f}  {cm['accuracy'] * 100:6.1f}  {rest['accuracy'] * 100:6.1f}"
            f"  {(rest['accuracy'] - sft['accuracy']) * 100:+7.1f}  {(rest['accuracy'] - cm['accuracy']) * 100:+7.1f}"
            f"  {wall:7.0f}   {buckets}"
        )
    print("seed  SFT %  c-m %  ReST %  vs SFT  vs c-m  wall s   ReST-EM by bucket (%)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
