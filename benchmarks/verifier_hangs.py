"""What a verifier of your own that hangs on 1 completion in 200 costs: completions lost (scored
None) and wall seconds, this checkout's FunctionVerifier against another commit's, measured
in the same run on the same completions.

    python benchmarks/verifier_hangs.py [--before 4c9cd84] [--n 1000] [--every 200] [--timeout 2] [--batch 64]

Before (4c9cd84): a batch that hangs is scored None whole after the deadline. Now
(`selftrain.plugins.Guarded`): the batch is halved, each half tried again in a fresh worker,
down to the hanging completion alone: one completion lost per hang, for a deadline per
halving (about log2(batch) + 1 of them); every piece keeps the whole deadline, so that a
completion that legitimately needs it is never cut short.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECKS = '''
import time


def hangs_sometimes(prompts, completions, answer, **columns):
    out = []
    for c, a in zip(completions, answer):
        if c.startswith("hang"):
            time.sleep(3600)
        out.append(c == a)
    return out
'''

RUN = '''
import json, sys, time
from selftrain.records import Problem
from selftrain.verifiers.function import FunctionVerifier

target, n, every, timeout, batch = sys.argv[1], *map(float, sys.argv[2:6])
n, every, batch = int(n), int(every), int(batch)
problems = [Problem(str(i), "q", "yes") for i in range(n)]
completions = ["hang" if i % every == every // 2 else ("yes" if i % 3 else "no") for i in range(n)]
verifier = FunctionVerifier(target, timeout=timeout, batch_size=batch)
start = time.perf_counter()
scores = verifier(problems, completions)
seconds = time.perf_counter() - start
verifier.close()
hung = sum(c == "hang" for c in completions)
lost = sum(s.value is None for s in scores)
wrong = sum(s.value is not None and (s.value > 0.5) != (c == "yes") for s, c in zip(scores, completions))
print(json.dumps({"completions": n, "hangs": hung, "unjudged": lost, "lost_beyond_the_hangs": lost - hung,
                  "misjudged": wrong, "seconds": round(seconds, 1)}))
'''


def measure(src: Path, target: str, args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, "-c", RUN, target, str(args.n), str(args.every), str(args.timeout), str(args.batch)],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="4c9cd84")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "checks.py").write_text(CHECKS)
        archive = tmp / "before.tar"
        subprocess.run(["git", "archive", "-o", str(archive), args.before, "src/selftrain"], cwd=ROOT, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp / "before")
        target = f"{tmp / 'checks.py'}:hangs_sometimes"
        rows = {"before": measure(tmp / "before" / "src", target, args), "now": measure(ROOT / "src", target, args)}
    print(f"{args.n} completions, a hang in 1 of {args.every}, deadline {args.timeout:g} s, batches of {args.batch}")
    for name, r in rows.items():
        print(f"  {name:<7} unjudged {r['unjudged']:>4} ({r['lost_beyond_the_hangs']} beyond the {r['hangs']} hangs), "
              f"misjudged {r['misjudged']}, {r['seconds']:.1f} s")
    b, a = rows["before"], rows["now"]
    print(f"completions lost per hang: {b['unjudged'] / b['hangs']:.1f} -> {a['unjudged'] / a['hangs']:.1f}; "
          f"wall time x{a['seconds'] / b['seconds']:.2f}")


if __name__ == "__main__":
    main()
