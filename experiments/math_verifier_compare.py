"""The math verifier of another commit against this one's, on the same answers, verdict by verdict.

    python experiments/math_verifier_compare.py --before 5f676f0 [--data ../shared/data]
        [--math-verify-tests /tmp/mv/math_verify-0.9.0/tests] [--rounds 2]

This checkout writes every answer once (gold solutions, the reference in plain text, the
reference's own text, every perturbation kind of this checkout's `verifiers.audit`,
math-verify's labelled test pairs, `tests/test_math_verifier.py::CASES`); each verifier
judges the same answers in a process of its own, the old one from `git archive BEFORE
src/selftrain` in a temporary folder. Prints accepted / rejected / unjudged per set and
kind for both, every verdict that became "accepted" (each must be truly equivalent), and
judgements per second on MATH-500 solutions and perturbed answers (a fresh verifier per
round, its workers started first). Backs docs/verifiers.md, "Measured".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def answers(data: Path, math_verify_tests: Path | None) -> list[dict]:
    """Every (set, kind, reference, question, completion, label) this checkout writes."""
    sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
    from math_verifier import math_verify_set
    from test_math_verifier import CASES

    from selftrain.verifiers.audit import perturbations

    rows: list[dict] = []

    def add(name, problems, golds, wrap):
        for i, ((ref, question), gold) in enumerate(zip(problems, golds)):
            base = {"set": name, "ref": ref, "question": question}
            rows.append(base | {"kind": "gold", "completion": gold})
            rows.append(base | {"kind": "plain text", "completion": f"The answer is {ref}."})
            rows.append(base | {"kind": "the reference itself", "completion": wrap.format(ref)})
            for kind, bad in perturbations(ref, problems[(i + 1) % len(problems)][0]).items():
                rows.append(base | {"kind": kind, "completion": wrap.format(bad)})

    for split in ("test", "train"):
        gsm = [json.loads(line) for line in (data / "gsm8k" / f"{split}.jsonl").open()]
        add(f"gsm8k-{split}", [(r["answer"].rsplit("####", 1)[1].strip(), r["question"]) for r in gsm],
            [r["answer"] for r in gsm], "#### {}")
    math = [json.loads(line) for line in (data / "math500" / "test.jsonl").open()]
    add("math500", [(r["answer"], r["problem"]) for r in math], [r["solution"] for r in math], "\\boxed{{{}}}")
    if math_verify_tests:
        problems, completions, labels = math_verify_set(math_verify_tests)
        for p, c, y in zip(problems, completions, labels):
            rows.append({"set": "math-verify pairs", "kind": "labelled right" if y else "labelled wrong",
                         "ref": p.answer, "question": "", "completion": c, "label": y})
        golds = list(dict.fromkeys(p.answer for p in problems))
        add("math-verify golds", [(g, "") for g in golds], [f"\\boxed{{{g}}}" for g in golds], "\\boxed{{{}}}")
    for cls, cases in CASES.items():
        for ref, completion, verdict in cases:
            rows.append({"set": "CASES", "kind": cls, "ref": ref, "question": "", "completion": completion,
                         "label": verdict})
    return rows


def judge(rows_path: Path, out_path: Path, rounds: int) -> None:
    """Run inside the verifier's own process: every verdict, then the timed rounds."""
    from selftrain.records import Problem
    from selftrain.verifiers.math import MathVerifier

    rows = [json.loads(line) for line in rows_path.open()]
    verifier = MathVerifier()
    problems = [Problem(str(i), r["question"], r["ref"]) for i, r in enumerate(rows)]
    scores = verifier(problems, [r["completion"] for r in rows])
    verifier.close()
    timings = {}
    for name, keep in (("MATH-500 solutions", lambda r: r["kind"] == "gold"),
                       ("MATH-500 perturbed", lambda r: r["kind"] not in ("gold", "plain text", "the reference itself"))):
        picked = [i for i, r in enumerate(rows) if r["set"] == "math500" and keep(r)]
        timings[name] = []
        for _ in range(rounds):
            fresh = MathVerifier()
            fresh([Problem(str(i), "", "1") for i in range(fresh.pool.size)], ["\\boxed{x}"] * fresh.pool.size)
            fresh._cache.clear()
            t = time.perf_counter()
            fresh([problems[i] for i in picked], [rows[i]["completion"] for i in picked])
            timings[name].append(round(len(picked) / (time.perf_counter() - t), 1))
            fresh.close()
    out_path.write_text(json.dumps({"values": [s.value for s in scores], "reasons": [s.reason for s in scores],
                                    "per_second": timings}))


def run_verifier(rows_path: Path, out_path: Path, rounds: int, package_root: Path | None) -> dict:
    env = None
    if package_root is not None:
        import os

        env = os.environ | {"PYTHONPATH": str(package_root)}
    subprocess.run([sys.executable, __file__, "--judge", str(rows_path), str(out_path), "--rounds", str(rounds)],
                   check=True, env=env, cwd=package_root or ROOT)
    return json.loads(out_path.read_text())


def verdict(value) -> str:
    return {1.0: "accepted", 0.0: "rejected", None: "unjudged"}[value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="the commit whose verifier is compared")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--math-verify-tests", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--judge", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.judge:
        return judge(*args.judge, args.rounds)
    if not args.before:
        ap.error("--before COMMIT is required")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "src/selftrain"],
                                 check=True, capture_output=True).stdout
        (tmp / "old.tar").write_bytes(archive)
        with tarfile.open(tmp / "old.tar") as tar:
            tar.extractall(tmp / "old", filter="data")
        rows = answers(args.data, args.math_verify_tests)
        rows_path = tmp / "rows.jsonl"
        rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        before = run_verifier(rows_path, tmp / "before.json", args.rounds, tmp / "old" / "src")
        after = run_verifier(rows_path, tmp / "after.json", args.rounds, None)

    counts = {side: Counter((r["set"], r["kind"], verdict(v)) for r, v in zip(rows, res["values"]))
              for side, res in (("before", before), ("after", after))}
    print(f"{'set':18} {'kind':24} {'before: acc / rej / unj':>24} {'after: acc / rej / unj':>24}")
    for key in dict.fromkeys((r["set"], r["kind"]) for r in rows):
        cells = ["{:>7} {:>7} {:>7}".format(*(counts[side][(*key, v)] for v in ("accepted", "rejected", "unjudged")))
                 for side in ("before", "after")]
        print(f"{key[0]:18} {key[1]:24} {cells[0]:>24} {cells[1]:>24}")
    wrong = {"gold", "plain text", "the reference itself", "labelled right", "labelled wrong"}
    for name in dict.fromkeys(r["set"] for r in rows if r["set"] != "CASES" and r["kind"] not in wrong):
        cells = ["{:>7} {:>7} {:>7}".format(*(sum(n for (s, k, v), n in counts[side].items()
                                                if s == name and k not in wrong and v == want)
                                            for want in ("accepted", "rejected", "unjudged")))
                 for side in ("before", "after")]
        print(f"{name:18} {'perturbed, all kinds':24} {cells[0]:>24} {cells[1]:>24}")
    cases = [(r, b, a) for r, b, a in zip(rows, before["values"], after["values"]) if r["set"] == "CASES"]
    for side, i in (("before", 1), ("after", 2)):
        right = sum((c[i] is None and c[0]["label"] is None) or (c[i] is not None and c[0]["label"] == c[i])
                    for c in cases)
        print(f"CASES as written, {side}: {right}/{len(cases)}")
    for name in before["per_second"]:
        print(f"{name}: judgements/s before {before['per_second'][name]}, after {after['per_second'][name]}")
    print("\nnow accepted, not accepted before (each must be truly equivalent):")
    for r, b, a, why in zip(rows, before["values"], after["values"], after["reasons"]):
        if a == 1.0 and b != 1.0:
            print(f"  [{r['set']} / {r['kind']}] {verdict(b)} -> accepted: {r['ref']!r} | {r['completion'][:120]!r} ({why})")
    moved = Counter((r["set"], r["kind"], verdict(b), verdict(a))
                    for r, b, a in zip(rows, before["values"], after["values"]) if a != b)
    print("\nverdicts that moved (set, kind, before, after): count")
    for key, n in sorted(moved.items()):
        print(f"  {key}: {n}")


if __name__ == "__main__":
    main()
