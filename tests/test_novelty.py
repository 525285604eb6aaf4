"""The novelty filter keeps exactly what a brute-force check with rouge-score keeps."""

import json
import random

import pytest

from selftrain.data import SELF_INSTRUCT_SEED_TASKS
from selftrain.data.novelty import NoveltyFilter, filter_novel, lcs_length, rouge_l, rouge_tokens

SEED_TASKS = SELF_INSTRUCT_SEED_TASKS


def _variants(texts: list[str], n: int, rng: random.Random) -> list[str]:
    """Near-duplicates around the threshold: a word dropped, added, swapped or replaced."""
    out = []
    for _ in range(n):
        words = rng.choice(texts).split()
        for _ in range(rng.randint(1, 4)):
            op, i = rng.randrange(4), rng.randrange(len(words))
            if op == 0 and len(words) > 2:
                del words[i]
            elif op == 1:
                words.insert(i, rng.choice(["please", "briefly", "the", "new", "three"]))
            elif op == 2:
                j = rng.randrange(len(words))
                words[i], words[j] = words[j], words[i]
            else:
                words[i] = rng.choice(["story", "list", "email", "poem"])
        out.append(" ".join(words))
    return out


def test_same_kept_set_as_brute_force_rouge_score():
    rouge_score = pytest.importorskip("rouge_score.rouge_scorer")
    seeds = [json.loads(line)["instruction"] for line in SEED_TASKS.open()]
    rng = random.Random(0)
    texts = seeds[:120] + _variants(seeds[:120], 120, rng) + seeds[120:]
    rng.shuffle(texts)
    scorer = rouge_score.RougeScorer(["rougeL"], use_stemmer=False)
    kept: list[str] = []
    for text in texts:
        if all(scorer.score(k, text)["rougeL"].fmeasure < 0.7 for k in kept):
            kept.append(text)
    ours = NoveltyFilter()
    assert [t for t in texts if ours.add(t)] == kept
    assert 0 < len(texts) - len(kept)  # near-duplicates were rejected
    assert ours.lcs_computed < ours.pairs_seen / 10  # and most pairs were never computed


def test_scores_match_rouge_score_pair_by_pair():
    rouge_score = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_score.RougeScorer(["rougeL"], use_stemmer=False)
    pairs = [("Give three tips for staying healthy.", "Give me three tips to stay healthy!"),
             ("", "anything"), ("A B c", "c b a"), ("Écrire un poème", "write a poem")]
    for a, b in pairs:
        assert rouge_l(rouge_tokens(a), rouge_tokens(b)) == scorer.score(a, b)["rougeL"].fmeasure


def test_pool_texts_count_against_new_ones():
    assert filter_novel(["Tell me a joke about cats."], pool=["Tell me a joke about cats!"]) == []
    assert lcs_length([], ["a"]) == 0
