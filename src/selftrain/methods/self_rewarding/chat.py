"""The chat variant's steps 0, 1, 3 and 6: any chat model (`model.name_or_path`: a folder, a
hub name or a .gguf file), sampled through its chat template, judging with the paper's
additive 5-point prompt word for word.

- Step 0: M1 is the given model (the paper's M1 is Llama 2 70B after SFT on IFT + EFT data
  from Open Assistant, which is not available offline: a deviation).
- Step 1: 8 pool prompts shown (`Task N: ...`), the model writes the next; kept when of a
  sensible length, not a near-duplicate and not a held-out prompt.
- Step 3: the model judges each response with `ADDITIVE_5_POINT`, 3 times, averaged.
- The remedies: the anchor is the given model (M0 = M1 here), and iteration 1 has no previous
  judge (CREAM's C is then 1); the meta-judge compares two judgements of a response with
  `META_JUDGE` in both orders; the EFT refresh answers `eft_refresh.data` (prompt and
  answer; or the task's human split, e.g. `task.name: gsm8k`), the task's grader labels each answer, and a judgement whose score agrees with
  the label (>= 4 right, <= 2 wrong) is chosen against one that does not.
- Step 6: each model's greedy answers to held-out prompts, scored by itself and by M1's judge
  (a fixed yardstick), and head to head against M1's answers, judged by M1 in both orders (a
  win counts only when both orders agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from selftrain import stages
from selftrain.artifacts import read_jsonl, read_rows
from selftrain.config import Generation, SamplerConfig
from selftrain.data import SELF_INSTRUCT_SEED_TASKS
from selftrain.errors import ConfigError
from selftrain.methods.self_rewarding.config import Remedies
from selftrain.records import Pair, Problem
from selftrain.stages.prompts import FEWSHOT_HEADER, PromptFilter
from selftrain.stages.self_rewarding import judge_pairs, pairwise
from selftrain.verifiers.llm_judge import TEMPLATES, LLMJudge


def prompt_problem(text: str, pid: str) -> Problem:
    """A written prompt as a problem with no reference answer."""
    return Problem(pid, text, "")


@dataclass
class Chat:
    """The chat variant of the loop (`methods.self_rewarding.iterate` runs its steps)."""

    ctx: stages.RunContext
    remedies: Remedies = None  # type: ignore[assignment]
    """The remedies this loop runs (None given: the config's)."""
    pair_judge: Literal["self", "grader"] = "self"
    m0: stages.Artifact | None = field(default=None, repr=False)
    """No model before M1 (the given model): iteration 1 has no previous judge."""
    first: stages.Artifact | None = field(default=None, repr=False)
    first_answers: stages.Artifact | None = field(default=None, repr=False)
    """M1's answers to the held-out prompts (step 6 of M1), which later models are compared with."""

    @property
    def row(self) -> Callable[[Pair], dict[str, Any]]:
        """Step 5's rows: conversational, so that TRL applies the chat template."""
        return stages.chat_rows

    def __post_init__(self):
        if self.remedies is None:
            self.remedies = self.sec.remedies
        chat = self.ctx.cfg.self_rewarding.chat
        self.pool, self.held_out = split_seed_prompts(chat.seed_prompts or SELF_INSTRUCT_SEED_TASKS, self.sec.prompts.shots,
                                                      chat.eval_prompts)

    @property
    def sec(self):
        return self.ctx.cfg.self_rewarding

    @property
    def sampler(self) -> SamplerConfig:
        """Steps 1-3 and 6 sample the policy through its chat template."""
        return self.ctx.policy.model_copy(update={"chat": True})

    def m1(self) -> stages.Artifact:
        """Step 0: the given model."""
        self.first = stages.start_model(self.ctx, self.ctx.cfg.model)
        return self.first

    def write_prompts(self, group: str, policy: stages.Artifact) -> list[Problem]:
        """Step 1: 8 pool prompts shown, the model writes the next."""
        prompts, chat = self.sec.prompts, self.sec.chat
        keep = PromptFilter(self.pool, min_chars=chat.min_chars, max_chars=chat.max_chars, forbidden=self.held_out)
        params = replace(prompts.params(), max_new_tokens=prompts.max_new_tokens or 96)
        written = stages.write_prompts(self.ctx, group, policy, self.pool, prompts.n, prompts.shots, params, keep,
                                       prompt_problem, FEWSHOT_HEADER, numbered=True, sampler=self.sampler)
        return stages.load_problems(written)

    def judge(self, group: str, policy: stages.Artifact, problems: list[Problem], responses: stages.Artifact,
              name: str = "judge") -> stages.Artifact:
        """Step 3: the same model judges every response with the paper's prompt."""
        judge = self.sec.judge
        return stages.judge(self.ctx, group, policy, problems, responses, "additive-5", judge.samples, judge.params(),
                            self.sec.chat.finish, sampler=self.sampler, name=name)

    def anchor(self, m1: stages.Artifact) -> stages.Artifact:
        """The anchor: the given model (M0 and M1 alike here)."""
        return m1

    def meta_judge(self, group: str, policy: stages.Artifact, problems: list[Problem], scores: stages.Artifact) -> stages.Artifact:
        """Meta-Rewarding's judge pairs: for each response, its highest- and lowest-scored
        judgements compared by `policy` with `META_JUDGE` in both orders; the winner chosen."""
        params, seed = self.sec.judge.params(), self.ctx.seed(f"{group}/meta-judge")
        by_id = {p.id: p for p in problems}
        responses, judgements = scores["samples"], scores["judgements"]

        def make(sampler) -> tuple[list[Pair], dict[str, Any]]:
            return chat_meta_pairs(LLMJudge(sampler, "additive-5", 1, params, seed), by_id, read_jsonl(responses),
                                   read_jsonl(judgements))

        return judge_pairs(self.ctx, group, "meta-judge", policy, make, scores, params, seed, sampler=self.sampler)

    def eft_refresh(self, group: str, policy: stages.Artifact) -> stages.Artifact:
        """EFT refresh (uses labels): `policy` answers the first `eft_refresh.problems` rows of
        `eft_refresh.data` (or of the task's human split), the task's grader labels the
        answers, and `policy` judges them."""
        ctx, refresh, judge = self.ctx, self.remedies.eft_refresh, self.sec.judge
        if refresh.data is not None:
            labelled = [Problem(f"eft-{i}", r["prompt"], str(r["answer"]))
                        for i, r in enumerate(read_rows(refresh.data, ("prompt", "answer"))[: refresh.problems])]
        else:
            labelled = ctx.human[: refresh.problems]
        answers = stages.generate(ctx, group, policy, labelled, self.sec.responses, name="eft-answers", sampler=self.sampler)
        labels = stages.score(ctx, group, answers, labelled, ctx.grader, name="eft-labels")
        checked = stages.judge(ctx, group, policy, labelled, answers, "additive-5", judge.samples, judge.params(),
                               self.sec.chat.finish, sampler=self.sampler, name="eft-judge")
        return stages.filter_rows(ctx, group, "eft-pairs", [answers, checked.part("judgements"), labels],
                                  chat_grounded_pairs)

    def pair_check(self, problems: list[Problem]) -> Callable[[list[Pair]], dict[str, Any]] | None:
        return None  # no grader knows the right answer to an open prompt

    def evaluate(self, group: str, model: stages.Artifact) -> None:
        """Step 6: greedy answers to the held-out prompts, scored by the model itself and by
        M1, and head to head against M1's -> RUN/<group>/answers.jsonl and the judges' files."""
        ctx, sec = self.ctx, self.sec
        problems = [Problem(f"eval-{i}", p, "") for i, p in enumerate(self.held_out)]
        answers = stages.generate(ctx, group, model, problems, Generation(k=1, temperature=0.0, max_new_tokens=sec.responses.max_new_tokens),
                                  name="answers", sampler=self.sampler)
        greedy = sec.judge.model_copy(update={"temperature": 0.0, "samples": 1})
        stages.judge(ctx, group, model, problems, answers, "additive-5", 1, greedy.params(), sec.chat.finish,
                     sampler=self.sampler, name="self-judge")
        if self.first_answers is None:  # M1's own evaluation: the answers the others are compared with
            self.first_answers = answers
        else:
            stages.judge(ctx, group, self.first, problems, answers, "additive-5", 1, greedy.params(), sec.chat.finish,
                         sampler=self.sampler, name="m1-judge")
            pairwise(ctx, group, self.first, problems, answers, self.first_answers, greedy.params(), sampler=self.sampler)


def chat_meta_pairs(meta: LLMJudge, by_id: dict[str, Problem], samples: list[dict[str, Any]],
                    judgements: list[dict[str, Any]]) -> tuple[list[Pair], dict[str, Any]]:
    """Per response, its highest- and lowest-scored judgements (scores differing) compared by
    the meta-judge; the judge pair's prompt is the judge's own prompt for that response."""
    template = TEMPLATES["additive-5"]
    asks = []
    for s, j in zip(samples, judgements):
        read = readable(j["outputs"])
        if len(read) >= 2 and max(read)[0] != min(read)[0]:
            asks.append((s, max(read, key=lambda x: x[0]), min(read, key=lambda x: x[0])))
    wins = meta.meta_pairwise([by_id[s["problem_id"]] for s, _, _ in asks], [s["completion"] for s, _, _ in asks],
                              [hi[1] for _, hi, _ in asks], [lo[1] for _, _, lo in asks]) if asks else []
    made = []
    for (s, hi, lo), win in zip(asks, wins):
        if win is None:
            continue
        (better, worse) = (hi, lo) if win == 0 else (lo, hi)
        made.append(Pair(f"meta:{s['problem_id']}/{s['index']}", template.format(s["prompt"], s["completion"]), better[1],
                         worse[1], better[0], worse[0]))
    return made, {"responses": len(samples), "responses_with_different_scores": len(asks), "undecided": wins.count(None),
                  "lower_score_preferred": sum(w == 1 for w in wins)}


def chat_grounded_pairs(samples: list[dict[str, Any]], judgements: list[dict[str, Any]],
                        labels: list[dict[str, Any]]) -> stages.Filtered:
    """The EFT refresh's judge pairs on a chat model: for each labelled answer, a judgement
    whose score agrees with the label (>= 4 for a right answer, <= 2 for a wrong one) against
    one that does not; answers whose judgements all agree, or none does, give no pair."""
    template = TEMPLATES["additive-5"]
    kept, agree, disagree, right_answers = [], 0, 0, 0
    for s, j, label in zip(samples, judgements, labels):
        right = label["value"] is not None and label["value"] > 0.5
        right_answers += right
        read = readable(j["outputs"])
        good = [x for x in read if (x[0] >= 4 if right else x[0] <= 2)]
        bad = [x for x in read if x not in good]
        agree, disagree = agree + len(good), disagree + len(bad)
        if good and bad:
            kept.append(Pair(f"eft:{s['problem_id']}/{s['index']}", template.format(s["prompt"], s["completion"]),
                             good[0][1], bad[0][1], good[0][0], bad[0][0]).to_json())
    return stages.Filtered(kept, counts={"answers": len(samples), "right_answers": right_answers,
                                         "judge_error_rate": round(disagree / max(agree + disagree, 1), 5)})


def readable(outputs: list[Any]) -> list[tuple[float, str]]:
    """A response's judgements that the paper's prompt can read, with their scores (a
    failed remote judgement or one without a score left out).

    >>> readable(["Good. Score: 4", "no verdict", {"failed": "timeout", "attempts": 3}])
    [(4.0, 'Good. Score: 4')]
    """
    template = TEMPLATES["additive-5"]
    read = ((template.parse(o)[0], o) for o in outputs if isinstance(o, str))
    return [(v, o) for v, o in read if v is not None]


def load_prompts(path: str | Path) -> list[str]:
    """Prompts from JSON lines: `prompt`, or `instruction` (+ the first instance's input)."""
    prompts = []
    for n, row in enumerate(read_rows(path), 1):
        text = row.get("prompt") or row.get("instruction")
        if not isinstance(text, str):
            raise ConfigError(f"{path}: row {n} has no prompt or instruction (self_rewarding.chat.seed_prompts)")
        inputs = row.get("instances") or [{}]
        if isinstance(inputs[0], dict) and inputs[0].get("input"):
            text = f"{text}\n\n{inputs[0]['input']}"
        prompts.append(text.strip())
    return prompts


def split_seed_prompts(path: str | Path, shots: int, held_out: int) -> tuple[list[str], list[str]]:
    """The pool shown few-shot, and the held-out prompts (the last `held_out`)."""
    prompts = load_prompts(path)
    if len(prompts) < shots + held_out:
        raise ConfigError(f"{path} has {len(prompts)} prompts; {shots} shots and {held_out} held-out prompts need more")
    return prompts[:-held_out], prompts[-held_out:]
