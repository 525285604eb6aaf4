"""The math verifier: extraction, equivalence, deadlines from any thread, and gold answers
against gold (GSM8K 1319/1319, MATH-500 >= 498/500) with perturbed answers rejected."""

import json
import threading
from pathlib import Path

import pytest

from selftrain.records import Problem
from selftrain.verifiers.audit import perturbations
from selftrain.verifiers.math import MathVerifier, extract_answer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(timeout=5.0)
    yield v
    v.close()


@pytest.mark.parametrize(
    "completion, answer, how",
    [
        ("First \\boxed{1} then \\boxed{\\frac{2}{3}}", "\\frac{2}{3}", "boxed"),
        ("\\boxed{\\{1, 2\\}} and so on", "\\{1, 2\\}", "boxed"),
        ("\\fbox{7}", "7", "boxed"),
        ("Thus, the answer is $\\sqrt{2}$.", "\\sqrt{2}", "the answer is"),
        ("The answer is: 12\nwhich is even", "12", "the answer is"),
        ("So 3*4=12.\n#### 12", "12", "####"),
        ("She pays $1,200 and then 5 more.", "5", "last number"),
        ("-3 is negative", "-3", "last number"),
        ("no number here", None, "no final answer found"),
    ],
)
def test_extraction_order(completion, answer, how):
    assert extract_answer(completion) == (answer, how)


@pytest.mark.parametrize(
    "reference, completion, accepted",
    [
        ("72", "so #### 72", True),
        ("1000", "The answer is $1,000.", True),
        ("0.5", "\\boxed{\\frac{1}{2}}", True),
        ("\\frac{14}{3}", "\\boxed{4\\frac{2}{3}}", True),
        ("p - q", "\\boxed{-q + p}", True),
        ("\\text{(C)}", "\\boxed{C}", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\boxed{(3, \\pi/2)}", True),
        ("x^2+2x", "The answer is $x(x+2)$.", True),
        ("72", "#### 73", False),
        ("\\frac{14}{3}", "\\boxed{\\frac{14}{5}}", False),
        ("p - q", "\\boxed{q - p}", False),
        ("\\text{(C)}", "\\boxed{D}", False),
        ("5", "nothing to see", False),
    ],
)
def test_equivalence(verifier, reference, completion, accepted):
    score = verifier([Problem("p", "", reference)], [completion])[0]
    assert score.accepted is accepted, score
    assert score.reason


def test_deadline_works_from_a_worker_thread_and_the_pool_recovers():
    v = MathVerifier(timeout=1.0)
    try:
        out = {}
        hard = "\\boxed{9^{9^{9^{9^{9}}}} - 9^{9^{9^{9^{9}}}} + 2}"  # sympy would take ages
        p, q = Problem("1", "", "2"), Problem("2", "", "\\sqrt{4}")
        thread = threading.Thread(target=lambda: out.update(s=v([p, q], [hard, "\\boxed{2}"])))
        thread.start()
        thread.join(60)
        assert not thread.is_alive()
        slow, fine = out["s"]
        assert slow.value is None and "timed out" in slow.reason
        assert fine.accepted
        assert v([q], ["The answer is $2$."])[0].accepted  # a fresh worker took over
    finally:
        v.close()


def _gsm8k_test():
    path = DATA / "gsm8k" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    rows = [json.loads(line) for line in path.open()]
    return [Problem(str(i), r["question"], r["answer"].rsplit("####", 1)[1].strip()) for i, r in enumerate(rows)], [
        r["answer"] for r in rows
    ]


def _math500():
    path = DATA / "math500" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    rows = [json.loads(line) for line in path.open()]
    return [Problem(r["unique_id"], r["problem"], r["answer"]) for r in rows], [r["solution"] for r in rows]


def test_gsm8k_gold_against_gold_and_perturbed(verifier):
    problems, solutions = _gsm8k_test()
    assert sum(s.accepted for s in verifier(problems, solutions)) == len(problems) == 1319
    wrong_p, wrong_c = [], []
    for i, p in enumerate(problems):
        for _kind, bad in perturbations(p.answer, problems[(i + 1) % len(problems)].answer).items():
            wrong_p.append(p)
            wrong_c.append(f"#### {bad}")
    accepted = sum(s.accepted for s in verifier(wrong_p, wrong_c))
    assert accepted <= 0.005 * len(wrong_p)


@pytest.mark.slow
def test_math500_gold_against_gold_and_perturbed(verifier):
    problems, solutions = _math500()
    scores = verifier(problems, solutions)
    assert sum(s.accepted for s in scores) >= 498
    wrong_p, wrong_c = [], []
    for i, p in enumerate(problems):
        for _kind, bad in perturbations(p.answer, problems[(i + 1) % len(problems)].answer).items():
            wrong_p.append(p)
            wrong_c.append(f"\\boxed{{{bad}}}")
    accepted = sum(s.accepted for s in verifier(wrong_p, wrong_c))
    assert accepted <= 0.005 * len(wrong_p), f"{accepted} of {len(wrong_p)} perturbed answers accepted"


# Precision first: each class of false accept and false reject found when the verifier was
# tried on answer sets it was not built on, with the verdict written by hand
# (1 right, 0 wrong, None could not judge).
CASES = {
    "equations": [
        ("10x^2-12x+29=0", "\\boxed{9x^2-12x+29=0}", 0),
        ("10x^2-12x+29=0", "\\boxed{10x^2-12x+28=0}", 0),
        ("10x^2-12x+29=0", "\\boxed{20x^2-24x+58=0}", 1),
        ("10x^2-12x+29=0", "\\boxed{29-12x+10x^2=0}", 1),
        ("y = 2x + 1", "\\boxed{y = 2x + 3}", 0),
        ("y = 2x + 1", "\\boxed{2x - y + 1 = 0}", 1),
        ("y = 2x + 1", "\\boxed{2x + 1}", 1),
        ("x^2 + y^2 = 4", "\\boxed{x^2 + y^2 = 5}", 0),
    ],
    "partial or prose references": [
        ("The ball lands after 10 seconds", "\\boxed{10}", None),
        ("It is 45 m high after 10 seconds", "\\boxed{45}", None),
        ("3\\sqrt{2} + 4", "\\boxed{3}", 0),
    ],
    "restated question": [
        ("\\frac{3}{2}", "\\boxed{\\log_{36}(216)=\\frac{3}{2}}", 1),
        ("\\frac{3}{2}", "\\boxed{\\log_{36}(216)=\\frac{4}{2}}", 0),
        ("2", "\\boxed{\\log_{36}(216)=2}", 0),  # a false restatement is wrong (issue 27; was None)
        ("-2", "\\boxed{\\log_{10}(0.1) = -2}", 0),
        ("\\log_{10}(0.01) = -2", "\\boxed{\\log_{10}(0.1) = -2}", 0),
        ("\\log_{10}(0.01) = -2", "\\boxed{-2}", 1),
        ("\\sin(\\pi/2) = 1, \\cos(\\pi/2) = 0", "\\boxed{\\sin(\\pi/2) = 2, \\cos(\\pi/2) = 0}", 0),
        ("\\tan(1) \\approx 1.557", "\\boxed{\\tan(1) \\approx 2.557}", 0),
        ("1.557", "\\boxed{\\tan(1) \\approx 2.557}", 0),
        ("1.557", "\\boxed{\\tan(1) \\approx 1.557}", 1),
    ],
    "chains": [
        ("i^{18} = (i^4)^4 \\cdot i^2 = -1", "\\boxed{i^{19} = (i^4)^4 \\cdot i^2 = -1}", 0),
        ("i^{18} = (i^4)^4 \\cdot i^2 = -1", "\\boxed{i^{18} = i^{16} \\cdot i^2 = -1}", 1),
        ("i^{18} = (i^4)^4 \\cdot i^2 = -1", "\\boxed{-1}", 1),
        ("-1", "\\boxed{i^{19} = (i^4)^4 \\cdot i^2 = -1}", 0),
        ("-1", "\\boxed{i^{18} = (i^4)^4 \\cdot i^2 = -1}", 1),
        ("-1", "\\boxed{x = i^{18} = -1}", 1),
        ("12", "\\boxed{3 \\cdot 4 = 13 - 1 = 12}", 1),
        ("12", "\\boxed{3 \\cdot 5 = 12 = 12}", 0),
    ],
    "lists and labelled parts": [
        ("r = 3, C = (2, -1)", "\\boxed{r = 4, C = (2, -1)}", 0),
        ("r = 3, C = (2, -1)", "\\boxed{C = (2, -1), r = 3}", 1),
        ("r = 3, C = (2, -1)", "\\boxed{r = 3}", 0),
        ("2, 1, 4, 1", "\\boxed{3, 1, 4, 1}", 0),
        ("2, 1, 4, 1", "\\boxed{1, 2, 4, 1}", 0),  # a sequence is compared in order
        ("x = 1, x = -2", "\\boxed{x = -2, x = 1}", 1),  # roots are a set
        ("x = 1, x = -2", "\\boxed{x = -3, x = 1}", 0),
        ("2 \\text{ or } 3", "\\boxed{3 \\text{ or } 2}", 1),
        ("\\{1, 2\\}", "\\boxed{\\{2, 1\\}}", 1),
        ("1,000", "\\boxed{1000}", 1),  # thousands, not a list
        ("32349", "\\boxed{32, 349}", 0),  # a list (math-verify's own test labels it wrong)
        ("32349", "\\boxed{32,\\! 349}", 1),  # MATH's thousands separator
        ("11111111100", "\\boxed{11,\\! 111,\\! 111,\\! 100}", 1),
        ("32349", "\\boxed{32,\\! 348}", 0),
        ("(5, 8)", "\\boxed{(x, y) = (5, 8)}", 1),  # a tuple of names labels a tuple
        ("(5, 8)", "\\boxed{(x, y) = (5, 9)}", 0),
        ("(5, 8), (8, 5)", "\\boxed{(x, y) = (5, 8) \\quad \\text{and} \\quad (8, 5)}", 1),
    ],
    "tiny numbers": [
        ("6.6e-34", "\\boxed{-(6.6e-34)}", 0),
        ("6.6 \\times 10^{-34}", "\\boxed{-6.6 \\times 10^{-34}}", 0),
        ("6.6e-34", "\\boxed{6.7e-34}", 0),
        ("6.6e-34", "\\boxed{\\frac{66}{10^{35}}}", 1),
        ("0", "\\boxed{10^{-40}}", 0),
    ],
    "honest parsing": [
        ("\\frac{1}{4} A_1 + \\frac{3}{4} A_2", "\\boxed{\\frac{3}{4}}", 0),
        ("\\frac{1}{4} A_1 + \\frac{3}{4} A_2", "\\boxed{\\frac{A_1 + 3 A_2}{4}}", 1),
        ("\\lfloor 3n/4 \\rfloor", "\\boxed{\\lfloor (3n+1)/4 \\rfloor}", 0),
        ("0", "\\boxed{\\lfloor x^2/10^{13} \\rfloor}", 0),  # 0 at every random rational point
        ("\\lfloor 3n/4 \\rfloor", "\\boxed{\\lfloor 4n/4 \\rfloor}", 0),
        ("|x - 1|", "\\boxed{|1 - x|}", 1),
        # issue 36, was 0: neither side parses to math (a `\\pm` in a fraction), so other text is not judged
        ("\\frac{-1 \\pm \\sqrt{13}}{4}", "\\boxed{(-1 \\pm \\sqrt{13})/4}", None),
    ],
    "the reference itself": [
        ("No solution", "\\boxed{\\text{No solution}}", 1),
        ("All real numbers", "The answer is all real numbers.", 1),
        ("All real numbers", "\\boxed{All integers}", None),
        ("MR = MC", "\\boxed{MR = MC}", 1),
        ("12 \\mathrm{~min}", "\\boxed{12 \\mathrm{~min}}", 1),
        ("12 \\mathrm{~min}", "\\boxed{12}", 1),
        ("12 \\mathrm{~min}", "\\boxed{13 \\mathrm{~min}}", 0),
        ("100 \\mathrm{~N}", "\\boxed{100 \\mathrm{~N}}", 1),
        ("x = \\frac{\\mathrm{gb}}{f}", "\\boxed{x = \\frac{\\mathrm{gb}}{f}}", 1),
        ("\\frac{1}{m} t", "\\boxed{\\frac{1}{m} t}", 1),
        ("\\infty", "\\boxed{$\\infty$}", 1),
        ("\\left(\\sin^2 x\\right)", "\\boxed{(\\sin^2 x)}", 1),
        ("\\dfrac{1}{2}", "The answer is $\\tfrac{1}{2}$.", 1),
        ("50\\%", "\\boxed{50}", 1),
    ],
    "matrices": [
        ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}}", 0),
        ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\boxed{\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}}", 1),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\boxed{\\begin{pmatrix} 1 & 2 \\end{pmatrix}}", 0),
    ],
    "scientific notation": [
        ("4.5e33", "\\boxed{4.5 \\times 10^{33}}", 1),
        ("4.5 \\times 10^{33}", "The answer is 4.5e33.", 1),
        ("4.5e33", "\\boxed{4.6 \\times 10^{33}}", 0),
        ("2E-5", "\\boxed{0.00002}", 1),
        ("6.02\\cdot 10^{23}", "\\boxed{6.02e23}", 1),
    ],
    "final-answer markers": [
        ("7", "\\framebox{7}", 1),
        ("7", "\\fbox{7}", 1),
        ("7", "\\boxed{\\textbf{7}}", 1),
        ("\\text{(B)}", "\\boxed{\\textbf{(B)}}", 1),
        ("\\text{Evelyn}", "\\boxed{\\text{Evelyn}}", 1),
    ],
    "units": [
        ("9 (apples)", "\\boxed{9}", 1),
        ("9", "The answer is 9 apples.", 1),
        ("15\\mbox{ cm}^2", "\\boxed{15}", 1),
        ("15", "\\boxed{16 \\text{ cm}}", 0),
        ("90^\\circ", "\\boxed{90}", 1),
    ],
    "multi-part and multi-line": [
        ("x = 2\ny = 3", "\\boxed{x = 2\ny = 3}", 1),
        ("x = 2\ny = 3", "\\boxed{x = 2\ny = 4}", 0),
        ("x = 2\ny = 3", "\\boxed{2}", None),
        ("(a) 4; (b) 7", "\\boxed{4; 7}", 1),
    ],
    "sentences": [
        ("\\text{Mrs. Lee}", "So the answer is Mrs. Lee. She won.", 1),
        ("3.5", "Mrs. Lee pours, so the answer is 3.5. Done.", 1),
    ],
    # issue 36: each row below failed before the change (the verdict it had is in the comment)
    "intervals and unions": [
        ("(-\\infty, 2.29]", "\\boxed{(-\\infty, 2.2900001]}", 0),  # was 1: endpoints rounded to 6 places
        ("(0.3, 1)", "\\boxed{(0.3000001, 1)}", 0),  # was 1
        ("[0, 0.0000001]", "\\boxed{[0, 0.0000002]}", 0),  # was 1
        ("\\{0.3, 1\\}", "\\boxed{\\{0.3000001, 1\\}}", 0),  # was 1: elements rounded alike
        # was 1: the parse kept two endpoints of the equation's right side
        ("\\{-2\\pi, -7\\pi/6\\}", "\\boxed{[-11\\pi/6, -7\\pi/6] \\cup [\\pi/6, 5\\pi/6] = [-2\\pi, -7\\pi/6] \\cup [\\pi/6, 5\\pi/6]}", 0),
        ("[2, 5)", "\\boxed{[4/2, 10/2) = [2, 5)}", 1),  # was 0: an equation of intervals, both sides compared
        ("[2, 5) \\cup (7, \\infty)", "\\boxed{[2, 5) \\cup (7, \\infty) = (7, \\infty) \\cup [2, 5)}", 1),  # was 0
        ("[1, 3]", "\\boxed{1 \\le x \\le 3}", 1),  # was 0
    ],
    "labels as a mapping": [
        ("C_1=1/5, C_2=-3, C_3=2", "\\boxed{C_2=1/5, C_2=-3, C_3=2}", 0),  # was 1: a label repeated
        ("x = 1, x = -2", "\\boxed{x = 1, y = -2}", 0),  # was 1: another name
        ("a = 1, b = 2", "\\boxed{(a, b) = (1, 2)}", 1),  # was 0: a tuple of names labels its values
    ],
    "subscripted and named symbols": [
        ("\\frac{1}{3} E_1 + \\frac{2}{3} E_2", "\\boxed{\\frac{2}{3} E_1 + \\frac{2}{3} E_2}", 0),  # was 1: both read as 2/3
        ("\\frac{1}{3} E_1 + \\frac{2}{3} E_2", "\\boxed{-(\\frac{1}{3} E_1 + \\frac{2}{3} E_2)}", 0),  # was 1
        ("\\frac{1}{3} E_1 + \\frac{2}{3} E_2", "\\boxed{\\frac{2}{3}}", 0),  # was 1: compared by the part read
        ("\\frac{1}{3} E_1 + \\frac{2}{3} E_2", "\\boxed{\\frac{E_1 + 2E_2}{3}}", 1),  # was 0
        ("E_1 + E_2", "\\boxed{E_2 + E_1}", 1),  # was 0: compared as strings
        ("C_{2} t", "\\boxed{t C_2}", 1),  # was None: `t` dropped as a unit
        ("C_{2} t", "\\boxed{C_{2}}", 0),  # was None
        ("\\omega_0 t", "\\boxed{t\\omega_0}", 1),  # was None
        ("\\omega_0 t", "\\boxed{\\omega_0}", 0),  # was None
        ("v_{\\max}/2", "\\boxed{\\frac{v_{\\max}}{2}}", 1),  # was 0: compared as strings
    ],
    "free parameters": [
        ("y = Ax + a", "\\boxed{y = ax + A}", 0),  # was 1: A and a read as one name
        ("A x + a", "\\boxed{a x + A}", 0),  # was 1
        ("y = \\frac{c}{x-c}", "\\boxed{xy - cy = c}", 1),  # was None: `xy`, `cy` read as words
        ("y = \\frac{c}{x-c}", "\\boxed{xy - cy = c + 1}", 0),  # was None
        ("y = \\frac{c}{x-c}\ny \\equiv -1", "\\boxed{y = \\frac{c+1}{x-c}, y \\equiv -1}", 0),  # was None: 2 parts, 1
        ("y = \\frac{c}{x-c}\ny \\equiv -1", "\\boxed{y \\equiv -1, y = \\frac{c}{x-c}}", 1),  # was None
    ],
    "plain-text references": [
        ("all real numbers", "\\boxed{\\mathbb{R}}", 1),  # was None
        ("All real numbers", "\\boxed{(-\\infty, \\infty)}", 1),  # was None
        ("all real numbers", "\\boxed{x > 0}", 0),  # was None
        ("no solution", "\\boxed{\\emptyset}", 1),  # was None
        ("No solution", "\\boxed{x = 2}", 0),  # was None
        ("pi/2", "\\boxed{\\frac{\\pi}{2}}", 1),  # was 0: p times i
        ("(3, pi/2)", "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", 1),  # was 0
        ("sqrt(2)/2", "\\boxed{\\frac{\\sqrt{2}}{2}}", 1),  # was None
        ("sqrt(2)/2", "\\boxed{\\frac{\\sqrt{3}}{2}}", 0),  # was None
        ("(-infinity, 3]", "\\boxed{(-\\infty, 3]}", 1),  # was None
        ("ln(2)", "\\boxed{\\ln 2}", 1),  # was 0
        ("x = 2; y = 3", "\\boxed{x = 2, y = 3}", 1),  # was None: 2 parts, 1
        ("x = 2; y = 3", "\\boxed{x = 2, y = 4}", 0),  # was None
    ],
}

# issue 36's examples as written there, and guards beside them: already wrong before the change,
# and they stay wrong
ISSUE_36_AS_WRITTEN = [
    ("v_{\\max}/2", "\\boxed{\\frac{1}{2}}"),
    ("[-11\\pi/6, -7\\pi/6] \\cup [\\pi/6, 5\\pi/6]", "\\boxed{[-12\\pi/6, -7\\pi/6] \\cup [\\pi/6, 5\\pi/6]}"),
    ("(-\\infty, \\ln(2/5)/\\ln(4/5)]", "\\boxed{(-\\infty, \\ln(3/5)/\\ln(4/5)]}"),
    ("(-\\infty, \\ln(2/5)/\\ln(4/5)]", "\\boxed{(-\\infty, \\ln(3/5)/\\ln(4/5)] = (-\\infty, 2.29]}"),
    ("[2, 5)", "\\boxed{[2, 6) = [2, 5)}"),
    ("\\frac13 E_1 + \\frac23 E_2", "\\boxed{-(\\frac13 E_1 + \\frac23 E_2)}"),
    ("C_1=1/5, C_2=-3", "\\boxed{C_1=1/5, C_1=-3}"),
    ("y = \\frac{c}{x-c}", "\\boxed{y = \\frac{c+1}{x-c}}"),
    ("y = \\frac{c}{x-c}, y \\equiv -1", "\\boxed{y = \\frac{c+1}{x-c}, y \\equiv -1}"),
    ("v_{\\max}/2", "\\boxed{\\frac{v_{\\min}}{2}}"),
    ("2 C_{2} x + 1", "\\boxed{2 C_{3} x + 1}"),
]


@pytest.mark.parametrize("reference, completion", ISSUE_36_AS_WRITTEN)
def test_issue_36_examples_as_written_are_wrong(verifier, reference, completion):
    score = verifier([Problem("p", "", reference)], [completion])[0]
    assert score.value == 0.0, score


@pytest.mark.parametrize("cls, reference, completion, verdict",
                         [(cls, r, c, v) for cls, rows in CASES.items() for r, c, v in rows],
                         ids=lambda x: x if isinstance(x, str) and len(x) < 30 else None)
def test_precision_first_table(verifier, cls, reference, completion, verdict):
    score = verifier([Problem("p", "", reference)], [completion])[0]
    assert score.value == (None if verdict is None else float(verdict)), (cls, score)


def test_audit_counts_every_class_and_keeps_examples(verifier):
    from selftrain.verifiers.audit import audit

    problems = [Problem("1", "", "10x^2-12x+29=0"), Problem("2", "", "\\frac{3}{2}"),
                Problem("3", "", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"), Problem("4", "", "The sum is 5 apples")]
    report = audit(verifier, problems, [f"\\boxed{{{p.answer}}}" for p in problems])
    assert report.gold == {"accepted": 4}  # the prose reference, written as it is, is right
    assert report.itself == {"accepted": 4}
    assert report.false_accepts == 0
    kinds = set(report.perturbed)
    assert {"equation coefficient", "matrix entry", "false restatement"} <= kinds
    assert any("perturbed unjudged" in cls for cls in report.examples)  # a prose reference's perturbations
    assert report.lines()[0] == "gold answers: 4/4 accepted, 0 rejected, 0 unjudged"
    assert report.lines()[1] == "the reference itself: 4/4 accepted, 0 rejected, 0 unjudged"


def test_audit_perturbs_intervals_labels_subscripts_and_parameters(verifier):
    from selftrain.verifiers.audit import audit

    problems = [Problem("1", "", "[-11\\pi/6, -7\\pi/6] \\cup [\\pi/6, 5\\pi/6]"), Problem("2", "", "(-\\infty, 3]"),
                Problem("3", "", "C_1 = \\frac{1}{5}, C_2 = -3, C_3 = 2"), Problem("4", "", "\\frac{1}{3} E_1 + \\frac{2}{3} E_2"),
                Problem("5", "", "y = \\frac{c}{x-c}")]
    report = audit(verifier, problems, [f"\\boxed{{{p.answer}}}" for p in problems])
    new = {"interval endpoint", "interval bracket", "interval false link", "duplicate label", "subscripted name",
           "free parameter"}
    assert new <= set(report.perturbed)
    assert report.false_accepts == 0
    assert all(report.perturbed[kind]["rejected"] == sum(report.perturbed[kind].values()) for kind in new), report.lines()
    assert report.gold == {"accepted": 5}


def test_audit_verifier_command(tmp_path):
    import subprocess
    import sys

    data = tmp_path / "mine.jsonl"
    data.write_text('{"answer": "72"}\n{"answer": "\\\\frac{3}{2}"}\n')
    proc = subprocess.run([sys.executable, "-m", "selftrain", "audit-verifier", str(data)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "gold answers: 2/2 accepted, 0 rejected, 0 unjudged"
    assert proc.stdout.splitlines()[1] == "the reference itself: 2/2 accepted, 0 rejected, 0 unjudged"
    assert "0 ACCEPTED (wrong)" in proc.stdout


def test_verifier_errors_are_counted_by_what_failed():
    from selftrain.records import Score
    from selftrain.stages.score import verifier_errors

    scores = [Score(None, "math-verify failed: RecursionError"), Score(None, "timed out after 5 s"), Score(1.0, "correct (2)"),
              Score(None, "math-verify failed: RecursionError"), Score(None, "the reference is prose, not an answer to compare whole")]
    assert verifier_errors(scores) == {"RecursionError": 2, "timed out": 1}


def test_a_problem_that_asks_for_a_set_is_matched_in_any_order(verifier):
    asks = Problem("p", "Enter all the solutions, separated by commas.", "1, -2")
    plain = Problem("q", "Give the first and second terms.", "1, -2")
    assert [s.value for s in verifier([asks, plain], ["\\boxed{-2, 1}", "\\boxed{-2, 1}"])] == [1.0, 0.0]
