"""The select stage: which scored samples become training data.

ReST-EM keeps only samples the verifier accepts, at most N per problem (the paper caps
MATH at 10 per problem, so that easy problems do not swamp the data), with exact
duplicates removed.
"""

from __future__ import annotations

from collections.abc import Sequence

from selftrain.records import Pair, Sample, Score


def select_correct(
    samples: Sequence[Sample],
    scores: Sequence[Score],
    max_per_problem: int | None,
    dedupe: bool = True,
) -> list[Sample]:
    """Accepted samples, duplicates removed, at most `max_per_problem` per problem.

    Keeps the first samples in their given order, so the choice is deterministic.

    >>> s = [Sample("p", i, "q", c) for i, c in enumerate(["a", "a", "b", "c", "x"])]
    >>> ok, bad = Score(1.0, "ok"), Score(0.0, "wrong")
    >>> [x.completion for x in select_correct(s, [ok, ok, ok, ok, bad], max_per_problem=2)]
    ['a', 'b']
    >>> [x.completion for x in select_correct(s, [ok, ok, ok, ok, bad], None, dedupe=False)]
    ['a', 'a', 'b', 'c']
    """
    if len(samples) != len(scores):
        raise ValueError(f"{len(samples)} samples but {len(scores)} scores")
    if max_per_problem is not None and max_per_problem < 1:
        raise ValueError("max_per_problem must be >= 1 or None")
    kept: list[Sample] = []
    per_problem: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for sample, score in zip(samples, scores):
        if not score.accepted:
            continue
        key = (sample.problem_id, sample.completion)
        if dedupe and key in seen:
            continue
        n = per_problem.get(sample.problem_id, 0)
        if max_per_problem is not None and n >= max_per_problem:
            continue
        seen.add(key)
        per_problem[sample.problem_id] = n + 1
        kept.append(sample)
    return kept


def best_vs_worst(samples: Sequence[Sample], scores: Sequence[Score], min_chosen: float | None = None,
                  max_rejected: float | None = None) -> list[Pair]:
    """Self-Rewarding's preference pairs: for each prompt, its highest-scored response
    against its lowest-scored one. A prompt is dropped when the two scores tie (the paper
    discards such pairs), when fewer than two responses have a score (None: unjudged), or
    (not in the paper) with `min_chosen`, when its best response scored below that, and with
    `max_rejected`, when its worst scored above that.
    The first sample wins a tie within the highest (or lowest) score, so pairs are stable.

    >>> s = [Sample("p", i, "q", c) for i, c in enumerate(["a", "b", "c"])]
    >>> [(x.chosen, x.rejected) for x in best_vs_worst(s, [Score(3, ""), Score(5, ""), Score(3, "")])]
    [('b', 'a')]
    >>> best_vs_worst(s, [Score(4, ""), Score(4, ""), Score(None, "")])
    []
    >>> best_vs_worst(s, [Score(3, ""), Score(4, ""), Score(1, "")], min_chosen=5)
    []
    >>> best_vs_worst(s, [Score(5, ""), Score(4, ""), Score(5, "")], max_rejected=3)
    []
    """
    if len(samples) != len(scores):
        raise ValueError(f"{len(samples)} samples but {len(scores)} scores")
    by_problem: dict[str, list[tuple[Sample, float]]] = {}
    for sample, score in zip(samples, scores):
        if score.value is not None:
            by_problem.setdefault(sample.problem_id, []).append((sample, score.value))
    pairs = []
    for pid, judged in by_problem.items():
        if len(judged) < 2:
            continue
        best = max(judged, key=lambda x: x[1])  # max/min keep the first of equals
        worst = min(judged, key=lambda x: x[1])
        if best[1] == worst[1] or (min_chosen is not None and best[1] < min_chosen) or \
                (max_rejected is not None and worst[1] > max_rejected):
            continue
        pairs.append(Pair(pid, best[0].prompt, best[0].completion, worst[0].completion, best[1], worst[1]))
    return pairs
