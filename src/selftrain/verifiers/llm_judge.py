"""LLM-as-a-judge: a prompt and its score parser in one object, tested together.

`ADDITIVE_5_POINT` is the judge prompt of Self-Rewarding Language Models (Yuan et al. 2024,
arXiv 2401.10020, Figure 2), word for word; `{prompt}` and `{response}` are filled in.
`LLMJudge` asks any sampler for several judgements of each response (the paper samples 3)
and averages the scores it can read; `LLMJudge.pairwise` asks both orders of two responses
and counts a win only when both orders agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from selftrain.errors import ConfigError
from selftrain.records import Problem, Score
from selftrain.samplers.base import Failed, Sampler, SamplingParams, generate_or_fail

ADDITIVE_5_POINT = """Review the user's question and the corresponding response using the additive 5-point scoring system described below. Points are accumulated based on the satisfaction of each criterion:
- Add 1 point if the response is relevant and provides some information related to the user's inquiry, even if it is incomplete or contains some irrelevant content.
- Add another point if the response addresses a substantial portion of the user's question, but does not completely resolve the query or provide a direct answer.
- Award a third point if the response answers the basic elements of the user's question in a useful way, regardless of whether it seems to have been written by an AI Assistant or if it has elements typically found in blogs or search results.
- Grant a fourth point if the response is clearly written from an AI Assistant's perspective, addressing the user's question directly and comprehensively, and is well-organized and helpful, even if there is slight room for improvement in clarity, conciseness or focus.
- Bestow a fifth point for a response that is impeccably tailored to the user's question by an AI Assistant, without extraneous information, reflecting expert knowledge, and demonstrating a high-quality, engaging, and insightful answer.

User: {prompt}
<response>{response}</response>

After examining the user's instruction and the response:
- Briefly justify your total score, up to 100 words.
- Conclude with the score using the format: "Score: <total points>"
Remember to assess from the AI Assistant perspective, utilizing web search knowledge as necessary. To evaluate the response in alignment with this additive scoring model, we'll systematically attribute points based on the outlined criteria."""

PAIRWISE = """Compare two responses to the user's question below and decide which one answers it better: more correct, more helpful, more to the point.

User: {prompt}
<response A>{a}</response A>
<response B>{b}</response B>

Briefly justify your choice, up to 100 words, then conclude with "Winner: A" or "Winner: B"."""

META_JUDGE = """Below are a user's question, a response to it, and two judgements of that response. Each judgement scores the response with an additive 5-point system: a point for being relevant, one for addressing a substantial part of the question, one for answering its basic elements usefully, one for answering directly and comprehensively in a well-organized way, and one for an impeccably tailored, expert answer. Decide which judgement applies that system more accurately: which awards the points the response deserves, for reasons that hold.

User: {prompt}
<response>{response}</response>
<judgement A>{a}</judgement A>
<judgement B>{b}</judgement B>

Briefly justify your choice, up to 100 words, then conclude with "Winner: A" or "Winner: B"."""
"""Meta-Rewarding's meta-judge (Wu et al. 2024, arXiv 2407.19594) in selftrain's words: two
judgements of one response compared (asked in both orders by `LLMJudge.meta_pairwise`)."""

_SCORE = re.compile(
    r"score\s*(?:\*\*|__)?\s*[:：=]\s*(?:\*\*|__)?\s*(-?\d+(?:\.\d+)?)\s*(?:(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?",
    re.I,
)
_WINNER = re.compile(r"winner\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(?:response\s*)?\(?([AB])\b", re.I)


@dataclass(frozen=True)
class JudgeTemplate:
    """A judge prompt and the range of the score it asks for."""

    name: str
    text: str
    min_score: float = 0.0
    max_score: float = 5.0

    def format(self, prompt: str, response: str) -> str:
        return self.text.replace("{prompt}", prompt).replace("{response}", response)

    def parse(self, output: str) -> tuple[float | None, str]:
        """The score a judge's output concludes with, or None and why.

        The last "Score: N" wins (a judge may restate it); `N/5` and `N out of 5` are read as
        N when the scale is this template's; markdown bold and a trailing period are allowed.

        >>> t = TEMPLATES["additive-5"]
        >>> t.parse("Relevant and complete. Score: 4"), t.parse("**Score:** 3/5."), t.parse("Score: 7")
        ((4.0, 'read'), (3.0, 'read'), (None, 'score 7 outside 0-5'))
        """
        found = _SCORE.findall(output)
        if not found:
            return None, "no 'Score: N' in the judgement"
        value, scale = found[-1]
        score = float(value)
        if scale and float(scale) != self.max_score:
            return None, f"score on another scale ({value}/{scale})"
        if not self.min_score <= score <= self.max_score:
            return None, f"score {value} outside {self.min_score:g}-{self.max_score:g}"
        return score, "read"

    def judge(self, sampler: Sampler, samples: int = 3,
              params: SamplingParams = SamplingParams(temperature=0.7, max_new_tokens=256), seed: int = 0,
              finish: bool = False) -> LLMJudge:
        """The judge that asks with this template (a template with its own way of asking,
        such as the Self-Rewarding miniature's two-turn check, returns its own kind)."""
        return LLMJudge(sampler, self, samples, params, seed, finish)


GROUNDED = """Below is a passage from a document, a question about it and an answer. Decide whether the question can be answered from the passage alone (no outside knowledge), and whether the answer is correct and fully supported by the passage.

{prompt}
Answer: {response}

Briefly justify your verdict in one or two sentences, then conclude with "Score: 1" if the question is answerable from the passage alone and the answer is supported by it, or "Score: 0" otherwise."""

TEMPLATES = {
    "additive-5": JudgeTemplate("additive-5", ADDITIVE_5_POINT, 0.0, 5.0),
    "grounded": JudgeTemplate("grounded", GROUNDED, 0.0, 1.0),
}
"""Named judge templates; `additive-5` is the Self-Rewarding paper's; `grounded` checks a
question-answer pair against its source passage (grounded QA)."""


def mean_of_readable(values: Iterable[float | None]) -> float | None:
    """The mean of the scores that could be read (not None), or None when none could: the
    one way a judge's several judgements of a response become its score.

    >>> mean_of_readable([4.0, None, 5.0]), mean_of_readable([None, None])
    (4.5, None)
    """
    read = [v for v in values if v is not None]
    return sum(read) / len(read) if read else None


def parse_winner(output: str) -> tuple[str | None, str]:
    """'A' or 'B' from a pairwise judgement (the last "Winner: X" wins), or None and why.

    >>> parse_winner("B is clearer. Winner: B"), parse_winner("**Winner:** Response A."), parse_winner("tie")
    (('B', 'read'), ('A', 'read'), (None, "no 'Winner: A|B' in the judgement"))
    """
    found = _WINNER.findall(output)
    if not found:
        return None, "no 'Winner: A|B' in the judgement"
    return found[-1].upper(), "read"


class LLMJudge:
    """A model as a judge: `judge(problems, responses)` gives one Score per response, the
    mean of the readable scores of `samples` judgements (None when none is readable)."""

    def __init__(
        self,
        sampler: Sampler,
        template: JudgeTemplate | str = "additive-5",
        samples: int = 3,
        params: SamplingParams = SamplingParams(temperature=0.7, max_new_tokens=256),
        seed: int = 0,
        finish: bool = False,
    ):
        self.sampler = sampler
        self.template = TEMPLATES[template] if isinstance(template, str) else template
        self.samples = samples
        self.params = params
        self.seed = seed
        self.finish = finish
        self.finished = 0
        """Judgements that ended without a score and were finished (counted over all calls)."""

    def describe(self) -> dict:
        """Its settings, for a stage's fingerprint."""
        return {"kind": type(self).__name__, "template": self.template.name, "samples": self.samples,
                "params": repr(self.params), "seed": self.seed, "finish": self.finish}

    def judgements(self, problems: Sequence[Problem], responses: Sequence[str]) -> list[list[str | Failed]]:
        """The raw judge outputs, `samples` per response; a request that a remote judge failed
        after its retries is a `Failed` in its place (it reads as no score).

        With `finish`, a judgement that ends without any "Score:" is handed back to the judge
        with `Score:` appended (an assistant prefill), and the judge's most probable score
        on the template's scale is read from its next-token probabilities (a local model;
        a backend without them continues greedily for a few tokens instead). The output
        then holds the judge's text, the appended `Score:` and the score. Not in the paper:
        a small model that drifts from the format otherwise gives no score at all. The
        number finished is kept in `self.finished`.
        """
        prompts = [self.template.format(p.prompt, r) for p, r in zip(problems, responses) for _ in range(self.samples)]
        outputs = generate_or_fail(self.sampler, prompts, self.params, self.seed)
        if self.finish:
            outputs = self._finish(prompts, outputs)
        return [outputs[i * self.samples : (i + 1) * self.samples] for i in range(len(responses))]

    def _finish(self, prompts: list[str], outputs: list[str | Failed]) -> list[str | Failed]:
        from selftrain.samplers.base import ChoosesNext, Continues

        todo = [i for i, o in enumerate(outputs) if isinstance(o, str) and not _SCORE.search(o)]
        if not todo:
            return outputs
        starts = [outputs[i].rstrip() + "\nScore:" for i in todo]
        asked = [prompts[i] for i in todo]
        scale = [str(v) for v in range(int(self.template.min_score), int(self.template.max_score) + 1)]
        if isinstance(self.sampler, ChoosesNext):
            try:  # tokenizers that write " 4" as one token
                picks = self.sampler.choose_next(asked, starts, [" " + v for v in scale])
            except ValueError:  # digits after a separate space token
                picks = self.sampler.choose_next(asked, [s + " " for s in starts], scale)
            tails = [" " + scale[k] for k in picks]
        elif isinstance(self.sampler, Continues):
            tails = self.sampler.continue_texts(asked, starts, SamplingParams(temperature=0.0, max_new_tokens=4), self.seed)
        else:
            raise ConfigError(f"{type(self.sampler).__name__} can neither read next-token probabilities nor continue "
                              "a started answer, so judgements cannot be finished: turn judge.finish off")
        outputs = list(outputs)
        for i, start, tail in zip(todo, starts, tails):
            outputs[i] = start + tail
        self.finished += len(todo)
        return outputs

    def scores(self, judgements: Sequence[Sequence[str | Failed]]) -> list[Score]:
        """One Score per response: the mean of its readable judgements (None when none is)."""
        out = []
        for outputs in judgements:
            parsed = [self.template.parse(o) if isinstance(o, str) else (None, f"request failed: {o.error}") for o in outputs]
            value = mean_of_readable(s for s, _ in parsed)
            if value is not None:
                read = sum(s is not None for s, _ in parsed)
                out.append(Score(value, f"mean of {read}/{len(outputs)} judgements"))
            else:
                out.append(Score(None, f"no readable score in {len(outputs)} judgements ({parsed[-1][1]})"))
        return out

    def __call__(self, problems: Sequence[Problem], responses: Sequence[str]) -> list[Score]:
        if len(problems) != len(responses):
            raise ValueError(f"{len(problems)} problems but {len(responses)} responses")
        return self.scores(self.judgements(problems, responses))

    def pairwise(self, problems: Sequence[Problem], first: Sequence[str], second: Sequence[str]) -> list[int | None]:
        """For each pair: 0 if `first` wins, 1 if `second` wins, None when the two orders
        disagree or a judgement is unreadable (position bias is not counted as a win)."""
        return self._both_orders([PAIRWISE.replace("{prompt}", p.prompt) for p in problems], first, second)

    def meta_pairwise(self, problems: Sequence[Problem], responses: Sequence[str], first: Sequence[str],
                      second: Sequence[str]) -> list[int | None]:
        """The meta-judge (`META_JUDGE`): for two judgements of each response, 0 if `first` is
        the more accurate, 1 if `second`, None when the two orders disagree."""
        return self._both_orders([META_JUDGE.replace("{prompt}", p.prompt).replace("{response}", r)
                                  for p, r in zip(problems, responses)], first, second)

    def _both_orders(self, asks: Sequence[str], first: Sequence[str], second: Sequence[str]) -> list[int | None]:
        prompts = []
        for ask, a, b in zip(asks, first, second):
            prompts.append(ask.replace("{a}", a).replace("{b}", b))
            prompts.append(ask.replace("{a}", b).replace("{b}", a))
        outputs = self.sampler.generate(prompts, self.params, self.seed)
        out: list[int | None] = []
        for i in range(len(first)):
            straight, _ = parse_winner(outputs[2 * i])
            swapped, _ = parse_winner(outputs[2 * i + 1])
            if straight == "A" and swapped == "B":
                out.append(0)
            elif straight == "B" and swapped == "A":
                out.append(1)
            else:
                out.append(None)
        return out
