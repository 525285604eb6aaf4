"""pass@k, maj@k and accuracy by bucket against values worked out by hand."""

import math
from itertools import combinations

import pytest

from selftrain.metrics import accuracy_by_bucket, maj_at_k, majority_vote, pass_at_k


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """The definition: the share of k-subsets of the n samples holding a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_pass_at_k_matches_its_definition(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_hand_values():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    # n=10, c=1, k=1 is c/n
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)
    # large n stays finite and exact enough
    assert pass_at_k(200, 3, 100) == pytest.approx(1 - math.comb(197, 100) / math.comb(200, 100))


@pytest.mark.parametrize("n,c,k", [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_majority_vote_and_maj_at_k():
    assert majority_vote(["1", "2", "2", "1", "3"]) == "1"  # tie between 1 and 2: first seen
    assert majority_vote([None, "9"]) == "9"
    assert maj_at_k(["5", "5", "6", None], [True, True, False, False]) == 1.0
    assert maj_at_k(["6", "5", "6", "5", "6"], [False, True, False, True, False]) == 0.0
    assert maj_at_k([None, None], [False, False]) == 0.0
    with pytest.raises(ValueError):
        maj_at_k(["1"], [True, False])


def test_accuracy_by_bucket_orders_numeric_buckets():
    acc = accuracy_by_bucket(["10", "2", "2", "easy"], [True, False, True, False])
    assert list(acc) == ["2", "10", "easy"]
    assert acc == {"2": 0.5, "10": 1.0, "easy": 0.0}
