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

Plain-text references (sets named `... plain`): the same problems with the reference
written as a person writes it without LaTeX (`plain_text`: `\\frac{\\sqrt{2}}{2}` as
`sqrt(2)/2`, `\\text{Evelyn}` as `Evelyn`, `(-\\infty, 0]` as `(-infinity, 0]`, GSM8K's `18` as
`$18` where the question speaks of dollars and `1,250` with its separator), judged against the
same gold solutions, the LaTeX reference boxed, and the same perturbed answers. `math500
phrases` writes the MATH-500 references that have a natural phrase as that phrase (lists of
solutions as `x = 1 or x = -2`, intervals as `x in [a, b)`). Then the unjudged share of right
answers per set, before and after.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


_GREEK = ("alpha beta gamma delta epsilon theta lambda mu sigma omega phi rho tau pi").split()
_SYMBOLS = {"\\infty": "infinity", "\\cdot": "*", "\\times": "*", "\\div": "/", "\\leq": "<=", "\\le": "<=",
            "\\geq": ">=", "\\ge": ">=", "\\neq": "!=", "\\ne": "!=", "\\pm": "+/-", "\\cup": "U", "\\in": "in",
            "\\emptyset": "{}", "\\varnothing": "{}", "\\%": "%", "\\$": "$", "\\{": "{", "\\}": "}", "\\circ": "degrees",
            "\\mathbb{R}": "all real numbers", "\\dots": "...", "\\ldots": "...", "\\cdots": "..."}


def _group(text, i):
    """(content, end) of the braced group or single character at `i`."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return "", i
    if text[i] != "{":
        if text[i] == "\\":
            m = re.match(r"\\[A-Za-z]+", text[i:])
            return m.group(), i + m.end()
        return text[i], i + 1
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j], j + 1
    return text[i + 1 :], len(text)


def _atom(t):
    t = t.strip()
    return t if re.fullmatch(r"-?[\w.]+|[\w.]+\([^()]*\)", t) else f"({t})"


def plain_text(latex: str) -> str:
    r"""A LaTeX answer as a person writes it in plain text: `\frac{\sqrt{2}}{2}` as `sqrt(2)/2`,
    `\pi` as `pi`, `\text{Evelyn}` as `Evelyn`, `90^\circ` as `90 degrees`.

    >>> plain_text("\\frac{\\sqrt{2}}{2}"), plain_text("\\left( 3, \\frac{\\pi}{2} \\right)"), plain_text("(-\\infty, 0]")
    ('sqrt(2)/2', '( 3, pi/2 )', '(-infinity, 0]')
    """
    t = re.sub(r",\\!\s*", ",", latex).replace("\\$", "DOLLAR").replace("$", "").replace("DOLLAR", "$")
    t = re.sub(r"(?<=\d)\s*(?=\\[dt]?frac)", " ", t)  # a mixed number: 1 4/5
    if "matrix" not in t:
        t = re.sub(r"\\\\(?=[a-zA-Z])", r"\\", t)  # `\\le`: a command written with two backslashes
    t = re.sub(r"\\q?quad|\\[,;:]|~|(?<!\\)\\ ", " ", t)
    t = re.sub(r"\\(?:left|right|displaystyle|mathrm(?=\{)|mbox(?=\{)|text(?:bf)?(?=\{)|!)(?![a-zA-Z])", "", t)
    out, i = [], 0
    while i < len(t):
        m = re.match(r"\\[dt]?frac", t[i:])
        if m:
            num, j = _group(t, i + m.end())
            den, k = _group(t, j)
            out.append(f"{_atom(plain_text(num))}/{_atom(plain_text(den))}" + ("*" if re.match(r"\s*(?:[A-Za-z(]|\\(?!end)[A-Za-z])", t[k:]) else ""))
            i = k
            continue
        m = re.match(r"\\sqrt\s*\[([^\]]*)\]", t[i:])
        if m:
            arg, k = _group(t, i + m.end())
            out.append(f"{_atom(plain_text(arg))}^(1/{m.group(1)})")
            i = k
            continue
        if t.startswith("\\sqrt", i):
            arg, k = _group(t, i + 5)
            out.append(f"sqrt({plain_text(arg)})")
            i = k
            continue
        if t[i] == "_":
            arg, k = _group(t, i + 1)
            sub = plain_text(arg)
            out.append(f"_{sub}" if len(sub) == 1 else f"_{{{sub}}}")
            i = k
            continue
        if t[i] == "^":
            arg, k = _group(t, i + 1)
            p = plain_text(arg)
            out.append(" degrees" if arg.strip() == "\\circ" else f"^{_atom(p)}")
            i = k
            continue
        if t[i : i + 2] == "\\\\":
            out.append("], [")
            i += 2
            continue
        m = re.match(r"\\mathbb\{R\}|\\[A-Za-z]+|\\[{}%$]", t[i:])
        if m:
            word = m.group()
            if word in _SYMBOLS:
                out.append(" " + _SYMBOLS[word] + " " if word in ("\\in", "\\cup") else _SYMBOLS[word])
            elif word in ("\\begin", "\\end"):
                env, k = _group(t, i + m.end())
                out.append("[[" if word == "\\begin" else "]]")
                i = k
                continue
            else:
                out.append(word[1:] + (" " if word[1:] in _GREEK and re.match(r"\w", t[i + m.end():i + m.end() + 1] or " ") else ""))
            i += m.end()
            continue
        if t[i] in "{}":
            i += 1
            continue
        if t[i] == "&":
            out.append(", ")
            i += 1
            continue
        out.append(t[i])
        i += 1
    return re.sub(r"\s+", " ", "".join(out)).strip()


def gsm8k_plain(number: str, question: str) -> str:
    """GSM8K's final number as a person writes it: with thousands separators, and a dollar
    sign where the question speaks of dollars.

    >>> gsm8k_plain("1250", "She pays $5 a day"), gsm8k_plain("18", "How many eggs?")
    ('$1,250', '18')
    """
    try:
        value = f"{int(number):,}"
    except ValueError:
        value = number
    return ("$" + value) if "$" in question and not value.startswith("-") else value


def phrase_of(answer: str, question: str) -> str | None:
    """A MATH-500 reference as the short phrase a person would write, where one is natural:
    a list of solutions as `x = 1 or x = -2` (the problem names x and asks for all of them),
    an interval as `x in [a, b)` (the problem names x), words as the words; else None.

    >>> phrase_of("1, -2", "Find all solutions $x$ of ..."), phrase_of("(2,\\infty)", "for which $x$ ...")
    ('x = 1 or x = -2', 'x in (2,infinity)')
    """
    from selftrain.verifiers.math import _ASKS_FOR_A_SET, list_items

    mode, items, names = list_items(answer)
    names_x = re.search(r"\$x\$|\bx\b", question) is not None
    if mode in ("ordered", "set") and len(items) > 1 and not any(names) and names_x and (
            _ASKS_FOR_A_SET.search(question) or "all" in question.lower()):
        return " or ".join(f"x = {plain_text(item)}" for item in items)
    if re.fullmatch(r"\s*(?:\\left)?[\[(].*,.*(?:\\right)?[\])]\s*(?:\\cup.*)?", answer) and "infty" in answer and names_x:
        return "x in " + plain_text(answer)
    if re.fullmatch(r"\\text\{[A-Za-z ]+\}", answer.strip()):
        return plain_text(answer)
    return None


def answers(data: Path, math_verify_tests: Path | None) -> list[dict]:
    """Every (set, kind, reference, question, completion, label) this checkout writes."""
    sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
    from math_verifier import math_verify_set
    from test_math_verifier import CASES

    from selftrain.verifiers.audit import perturbations

    rows: list[dict] = []

    def add(name, problems, golds, wrap, written=None):
        """`written`: the reference as the set states it, when not the LaTeX one (plain text)."""
        for i, ((ref, question), gold) in enumerate(zip(problems, golds)):
            if written is not None and written[i] is None:
                continue
            base = {"set": name, "ref": ref if written is None else written[i], "question": question}
            rows.append(base | {"kind": "gold", "completion": gold})
            if written is None:
                rows.append(base | {"kind": "plain text", "completion": f"The answer is {ref}."})
                rows.append(base | {"kind": "the reference itself", "completion": wrap.format(ref)})
            else:
                rows.append(base | {"kind": "the reference in LaTeX", "completion": wrap.format(ref)})
            for kind, bad in perturbations(ref, problems[(i + 1) % len(problems)][0]).items():
                rows.append(base | {"kind": kind, "completion": wrap.format(bad)})

    for split in ("test", "train"):
        gsm = [json.loads(line) for line in (data / "gsm8k" / f"{split}.jsonl").open()]
        problems = [(r["answer"].rsplit("####", 1)[1].strip(), r["question"]) for r in gsm]
        add(f"gsm8k-{split}", problems, [r["answer"] for r in gsm], "#### {}")
        add(f"gsm8k-{split} plain", problems, [r["answer"] for r in gsm], "#### {}",
            [gsm8k_plain(ref, question) for ref, question in problems])
    math = [json.loads(line) for line in (data / "math500" / "test.jsonl").open()]
    problems = [(r["answer"], r["problem"]) for r in math]
    add("math500", problems, [r["solution"] for r in math], "\\boxed{{{}}}")
    add("math500 plain", problems, [r["solution"] for r in math], "\\boxed{{{}}}", [plain_text(r) for r, _ in problems])
    add("math500 phrases", problems, [r["solution"] for r in math], "\\boxed{{{}}}", [phrase_of(r, q) for r, q in problems])
    if math_verify_tests:
        problems, completions, labels = math_verify_set(math_verify_tests)
        for p, c, y in zip(problems, completions, labels):
            rows.append({"set": "math-verify pairs", "kind": "labelled right" if y else "labelled wrong",
                         "ref": p.answer, "question": "", "completion": c, "label": y})
        golds = list(dict.fromkeys(p.answer for p in problems))
        add("math-verify golds", [(g, "") for g in golds], [f"\\boxed{{{g}}}" for g in golds], "\\boxed{{{}}}")
        add("math-verify plain", [(g, "") for g in golds], [f"\\boxed{{{g}}}" for g in golds], "\\boxed{{{}}}",
            [plain_text(g) for g in golds])
    for cls, cases in CASES.items():
        for ref, completion, verdict in cases:
            rows.append({"set": "CASES", "kind": cls, "ref": ref, "question": "", "completion": completion,
                         "label": verdict})
    return rows


SETS = """
How the sets are built (every set judged by both verifiers on the same answers):
  gsm8k-*, math500        the data's references as they are (GSM8K's number after ####, MATH-500's `answer`),
                          against the worked solutions (gold), "The answer is REF." (plain text), the reference
                          itself (boxed, or after ####), and every perturbation kind of this checkout's audit.
  math-verify pairs       math-verify 0.9.0's own labelled (gold, pred, expected) test pairs, as labelled there.
  math-verify golds       math-verify's distinct gold answers, boxed, audited like the data sets.
  * plain                 the same problems with the reference written as plain text (`plain_text`, this script:
                          LaTeX turned into what a person types: sqrt(2)/2, pi, (-infinity, 0], 90 degrees,
                          Evelyn, [[1, 0], [0, 1]]; GSM8K's number as $1,250 where the question speaks of dollars),
                          against the gold solution, the LaTeX reference boxed, and the same perturbed answers.
                          Built here, not collected from people: the issue's 2,818 college references are not
                          available; these stand in for references that are plain text rather than boxed.
  math500 phrases         the MATH-500 references that have a natural short phrase, written as it (`phrase_of`):
                          all solutions of x as "x = 1 or x = -2", intervals as "x in (2, infinity)".
  CASES                   tests/test_math_verifier.py's hand table, each row with its verdict written by hand.
"""


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
    print(SETS.strip() + "\n")
    print(f"{'set':18} {'kind':24} {'before: acc / rej / unj':>24} {'after: acc / rej / unj':>24}")
    for key in dict.fromkeys((r["set"], r["kind"]) for r in rows):
        cells = ["{:>7} {:>7} {:>7}".format(*(counts[side][(*key, v)] for v in ("accepted", "rejected", "unjudged")))
                 for side in ("before", "after")]
        print(f"{key[0]:18} {key[1]:24} {cells[0]:>24} {cells[1]:>24}")
    right = {"gold", "plain text", "the reference itself", "the reference in LaTeX", "labelled right"}
    wrong = right | {"labelled wrong"}
    for name in dict.fromkeys(r["set"] for r in rows if r["set"] != "CASES" and r["kind"] not in wrong):
        cells = ["{:>7} {:>7} {:>7}".format(*(sum(n for (s, k, v), n in counts[side].items()
                                                if s == name and k not in wrong and v == want)
                                            for want in ("accepted", "rejected", "unjudged")))
                 for side in ("before", "after")]
        print(f"{name:18} {'perturbed, all kinds':24} {cells[0]:>24} {cells[1]:>24}")
    print("\nright answers unjudged (gold, the reference in plain text, itself or in LaTeX; pairs labelled right):")
    for name in dict.fromkeys(r["set"] for r in rows if r["set"] != "CASES"):
        n = sum(counts["before"][(s, k, v)] for (s, k, v) in counts["before"] if s == name and k in right)
        cells = [sum(c for (s, k, v), c in counts[side].items() if s == name and k in right and v == "unjudged")
                 for side in ("before", "after")]
        print(f"  {name:20} {n:6d} right: unjudged before {cells[0]:5d} ({cells[0] / n:6.2%}), after {cells[1]:5d} ({cells[1] / n:6.2%})")
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
