"""Self-instruction creation: few-shot requests, first-task parsing, and every filter."""

import re

import pytest
from fakes import ScriptedSampler

from selftrain.samplers.base import SamplingParams
from selftrain.stages.prompts import PromptFilter, create_prompts, fewshot_prompt

POOL = [f"Write a haiku about {w}." for w in ["rain", "snow", "wind", "fire", "earth", "stone", "moss", "tide", "dawn"]]


def test_requests_show_eight_pool_prompts_and_filters_say_why():
    replies = [
        " Explain how tides work.\nTask 10: something else",
        " Write a haiku about rain.",  # exact duplicate of the pool
        " Write a haiku about the rain.",  # near-duplicate (ROUGE-L >= 0.7)
        " ",  # too short
        " What is 2+2?",  # fails the task's check (no digits allowed here)
        " Explain how tides work.",  # duplicate of a new one
        " Describe a dragon to a child.",
    ]
    sampler = ScriptedSampler(replies=replies)
    keep = PromptFilter(POOL, check=lambda p: not re.search(r"\d", p))
    kept, counts = create_prompts(sampler, POOL, 2, SamplingParams(temperature=1.0), seed=0, keep_filter=keep, max_rounds=3)
    assert kept == ["Explain how tides work.", "Describe a dragon to a child."]
    assert counts["duplicate"] == 2 and counts["near-duplicate"] == 1 and counts["length"] == 2 and counts["malformed"] == 1
    first = sampler.prompts[0]
    assert first.count("\nTask ") == 9 and first.endswith("\nTask 9:")
    assert sum(p in first for p in POOL) == 8


def test_forbidden_prompts_are_never_made_and_small_pools_fail_clearly():
    keep = PromptFilter(POOL, forbidden=["What is the capital of France?"])
    assert not keep.accept("What is the capital of France?")
    with pytest.raises(ValueError, match="8 are shown"):
        create_prompts(ScriptedSampler(), POOL[:3], 1, SamplingParams(), seed=0)
    assert fewshot_prompt(["a"], header="H\n") == "H\nTask 1: a\nTask 2:"
