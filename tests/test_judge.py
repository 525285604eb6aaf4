"""The judge's prompt and parser, together: a table of real-looking judge outputs, the
paper's prompt word for word, averaging, and the pairwise variant's both-orders rule."""

import re

import pytest
from fakes import ScriptedSampler

from selftrain.errors import ConfigError
from selftrain.records import Problem
from selftrain.samplers.base import SamplingParams
from selftrain.verifiers.llm_judge import ADDITIVE_5_POINT, PAIRWISE, TEMPLATES, LLMJudge, parse_winner

TEMPLATE = TEMPLATES["additive-5"]

WELL_FORMED = [
    ("The response is relevant and answers the question directly. Score: 4", 4.0),
    ("Justification: partial answer.\nScore: 2", 2.0),
    ("Score: 4/5", 4.0),
    ("It addresses most of it.\n\n**Score:** 3", 3.0),
    ("**Score: 5**", 5.0),
    ("Score: 4.", 4.0),
    ("score: 1", 1.0),
    ("SCORE: 0", 0.0),
    ("Score: 3 out of 5", 3.0),
    ("I would give Score: 2. On reflection the answer is complete.\nScore: 3", 3.0),
    ("Score: 4\n\nThe response is thorough. Final verdict, Score: 4", 4.0),
    ('Conclude with the score using the format: "Score: <total points>"\nScore: 2', 2.0),
    ("Score: 2.5", 2.5),
    ("Points: relevance +1, substance +1.\nScore:3", 3.0),
]

MALFORMED = [
    "The response is good and I would rate it highly.",
    "Score: <total points>",
    "Score: 7",
    "Score: -1",
    "Score: 8/10",
    "Score:",
    "4",
    "",
    "Total points: 4",
]


@pytest.mark.parametrize("output, expected", WELL_FORMED)
def test_every_well_formed_judgement_is_read(output, expected):
    assert TEMPLATE.parse(output) == (expected, "read")


@pytest.mark.parametrize("output", MALFORMED)
def test_every_malformed_judgement_is_none_with_a_reason(output):
    score, reason = TEMPLATE.parse(output)
    assert score is None and reason != "read"


def test_the_prompt_is_the_papers():
    text = TEMPLATE.format("What is 2+2?", "4")
    assert text.startswith("Review the user's question and the corresponding response using the additive 5-point")
    assert "User: What is 2+2?\n<response>4</response>" in text
    assert "- Briefly justify your total score, up to 100 words." in text
    assert '- Conclude with the score using the format: "Score: <total points>"' in text
    assert ADDITIVE_5_POINT.count("point") >= 5 and text.count("- ") >= 7


def test_scores_average_the_readable_judgements():
    sampler = ScriptedSampler(replies=["Score: 4", "Score: 2", "no score", "nothing", "Score: 9", "blah"])
    judge = LLMJudge(sampler, samples=3, params=SamplingParams(temperature=0.7))
    p = Problem("p", "What is 2+2?", "4")
    first, second = judge([p, p], ["4", "5"])
    assert first.value == 3.0 and first.reason == "mean of 2/3 judgements"
    assert second.value is None and "no readable score" in second.reason
    assert len(sampler.prompts) == 6 and sampler.prompts[0] == TEMPLATE.format("What is 2+2?", "4")


def test_finish_hands_a_scoreless_judgement_back_with_score_appended():
    sampler = ScriptedSampler(replies=["Good answer. Score: 4", "It is fine.", " 3", ])
    judge = LLMJudge(sampler, samples=1, finish=True)
    p = Problem("p", "What is 2+2?", "4")
    outputs = judge.judgements([p, p], ["4", "5"])
    assert outputs == [["Good answer. Score: 4"], ["It is fine.\nScore: 3"]]
    assert sampler.prompts[2] == TEMPLATE.format("What is 2+2?", "5") + "It is fine.\nScore:"  # raw text: prompt + start
    assert [s.value for s in judge.scores(outputs)] == [4.0, 3.0] and judge.finished == 1
    unfinished = LLMJudge(ScriptedSampler(replies=["It is fine."]), samples=1)
    assert unfinished([p], ["5"])[0].value is None


def test_finish_refuses_a_sampler_that_can_neither_continue_nor_choose():
    class Plain:
        def generate(self, prompts, params, seed):
            return ["no score"] * len(prompts)

    with pytest.raises(ConfigError, match="cannot be finished"):
        LLMJudge(Plain(), samples=1, finish=True).judgements([Problem("p", "q", "")], ["a"])


def test_pairwise_counts_a_win_only_when_both_orders_agree():
    sampler = ScriptedSampler(replies=["Winner: A", "Winner: B", "Winner: B", "Winner: A", "Winner: A", "Winner: A", "Winner: B", "??"])
    judge = LLMJudge(sampler)
    p = Problem("p", "q", "")
    assert judge.pairwise([p] * 4, ["x"] * 4, ["y"] * 4) == [0, 1, None, None]
    assert sampler.prompts[1] == PAIRWISE.replace("{prompt}", "q").replace("{a}", "y").replace("{b}", "x")
    assert parse_winner("Winner: (B)") == ("B", "read")


def test_a_real_tiny_model_judges_end_to_end(tmp_path):
    """The judge on a real (untrained) model: every response gets a Score with a reason; a
    context too short for the judge prompt is a clear error, not an index error."""
    from selftrain.config import TinyModelConfig
    from selftrain.samplers.hf import HFSampler
    from selftrain.training.tiny import save_tiny

    small = dict(arch="llama", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    save_tiny(tmp_path / "short", TinyModelConfig(**small, max_length=96), seed=0)
    with pytest.raises(ValueError, match="exceeds the model's context of 96"):
        LLMJudge(HFSampler(tmp_path / "short"), samples=1)([Problem("p", "2+2?", "4")], ["4"])
    save_tiny(tmp_path / "long", TinyModelConfig(**small, max_length=2048), seed=0)
    judge = LLMJudge(HFSampler(tmp_path / "long"), samples=2, params=SamplingParams(temperature=1.0, max_new_tokens=8))
    scores = judge([Problem("p", "2+2?", "4")] * 2, ["4", "5"])
    assert len(scores) == 2 and all(s.reason for s in scores)
    # finished: the untrained model writes no score, so its most probable digit on the 0-5 scale is read
    finishing = LLMJudge(HFSampler(tmp_path / "long"), samples=2, params=SamplingParams(temperature=1.0, max_new_tokens=8), finish=True)
    outputs = finishing.judgements([Problem("p", "2+2?", "4")] * 2, ["4", "5"])
    assert finishing.finished == 4 and all(re.search(r"\nScore: [0-5]$", o) for out in outputs for o in out)
    assert all(s.value is not None for s in finishing.scores(outputs))
