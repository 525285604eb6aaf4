from selftrain.records import Sample, Score
from selftrain.stages.select import select_correct

OK, BAD, NONE = Score(1.0, "ok"), Score(0.0, "wrong"), Score(None, "could not judge")


def test_keeps_only_accepted_capped_and_deduplicated_per_problem():
    samples = [Sample(pid, i, "q", c) for pid in ("a", "b") for i, c in enumerate(["x", "x", "y", "z", "w"])]
    scores = [OK, OK, OK, OK, BAD] + [BAD, NONE, OK, BAD, OK]
    kept = select_correct(samples, scores, max_per_problem=2)
    assert [(s.problem_id, s.completion) for s in kept] == [("a", "x"), ("a", "y"), ("b", "y"), ("b", "w")]
    # without the cap every distinct accepted completion is kept; unjudged ones never are
    kept = select_correct(samples, scores, max_per_problem=None)
    assert [(s.problem_id, s.completion) for s in kept] == [("a", "x"), ("a", "y"), ("a", "z"), ("b", "y"), ("b", "w")]


def test_rejects_misaligned_inputs_and_bad_cap():
    import pytest

    with pytest.raises(ValueError):
        select_correct([Sample("a", 0, "q", "x")], [], 1)
    with pytest.raises(ValueError):
        select_correct([], [], 0)
