"""Math verifier on real data: gold against gold, perturbed answers, answers per second.

    python benchmarks/math_verifier.py [--data ../shared/data]

Prints: GSM8K test solutions graded against their own final answers; MATH-500 solutions
against their `answer` (and every miss); perturbed answers (off by one, sign flipped,
wrong fraction, another problem's answer) and how many were wrongly accepted, per kind;
MATH-500 answers judged per second (warm workers, empty cache).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from selftrain.records import Problem
from selftrain.verifiers.audit import perturbations
from selftrain.verifiers.math import MathVerifier


def perturbed(problems: list[Problem], wrap: str) -> tuple[list[Problem], list[str], list[str]]:
    ps, cs, kinds = [], [], []
    for i, p in enumerate(problems):
        for kind, bad in perturbations(p.answer, problems[(i + 1) % len(problems)].answer).items():
            ps.append(p)
            cs.append(wrap.format(bad))
            kinds.append(kind)
    return ps, cs, kinds


def report(name: str, verifier: MathVerifier, problems, completions, wrap: str) -> None:
    scores = verifier(problems, completions)
    print(f"{name} gold against gold: {sum(s.accepted for s in scores)}/{len(scores)} accepted")
    for p, s in zip(problems, scores):
        if not s.accepted:
            print(f"  miss {p.id}: reference {p.answer!r}, read {s.answer!r}: {s.reason}")
    ps, cs, kinds = perturbed(problems, wrap)
    bad = verifier(ps, cs)
    wrongly = Counter(k for k, s in zip(kinds, bad) if s.accepted)
    total = Counter(kinds)
    rejected = len(bad) - sum(wrongly.values())
    print(f"{name} perturbed: {rejected}/{len(bad)} rejected ({100 * rejected / len(bad):.2f}%)")
    for kind in total:
        print(f"  {kind:15s} {total[kind] - wrongly[kind]}/{total[kind]} rejected")
    for p, c, k, s in zip(ps, cs, kinds, bad):
        if s.accepted:
            print(f"  accepted ({k}) {p.id}: reference {p.answer!r}, perturbed {c!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    args = ap.parse_args()
    data = Path(args.data)
    gsm = [json.loads(line) for line in (data / "gsm8k" / "test.jsonl").open()]
    gsm_p = [Problem(str(i), r["question"], r["answer"].rsplit("####", 1)[1].strip()) for i, r in enumerate(gsm)]
    math = [json.loads(line) for line in (data / "math500" / "test.jsonl").open()]
    math_p = [Problem(r["unique_id"], r["problem"], r["answer"]) for r in math]

    verifier = MathVerifier()
    report("GSM8K", verifier, gsm_p, [r["answer"] for r in gsm], "#### {}")
    report("MATH-500", verifier, math_p, [r["solution"] for r in math], "\\boxed{{{}}}")

    for _ in range(3):  # answers per second: warm workers, empty cache
        verifier._cache.clear()
        t = time.perf_counter()
        verifier(math_p, [r["solution"] for r in math])
        dt = time.perf_counter() - t
        print(f"MATH-500 throughput: {len(math_p) / dt:.0f} answers/s ({dt:.2f} s for {len(math_p)}, "
              f"{verifier.pool.size} workers)")
    verifier.close()


if __name__ == "__main__":
    main()
