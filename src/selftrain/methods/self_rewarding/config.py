"""The Self-Rewarding run config: the loop's shared steps, then one sub-section per variant
(`miniature` or `chat`), so that a setting of one variant cannot be given to the other."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from selftrain.config import (
    DPOConfig,
    EarlyStopping,
    EvalConfig,
    Generation,
    ModelConfig,
    Sampling,
    TaskConfig,
    TaskRun,
    TinyModelConfig,
    TrainConfig,
    _Section,
)


class PromptWriting(Sampling):
    """Step 1: self-instruction creation."""

    n: int = Field(300, ge=1)
    """New prompts the model writes per iteration (after filtering)."""
    shots: int = Field(8, ge=1)
    """Pool prompts shown per request (the paper: 8)."""
    temperature: float = Field(1.0, ge=0.0)
    max_new_tokens: int | None = Field(None, ge=1)
    """None: as long as a prompt of the variant can be (the miniature: a problem's length;
    chat: 96 tokens)."""


class JudgeConfig(Sampling):
    """Step 3: LLM-as-a-judge."""

    samples: int = Field(3, ge=1)
    """Judgements per response, averaged (the paper: 3)."""
    max_new_tokens: int = Field(32, ge=1)
    """The longest judgement, in tokens."""


class PairsConfig(_Section):
    """Step 4: which best-against-worst pairs are kept."""

    min_chosen_score: float | None = None
    """Keep a pair only if its chosen response scored at least this (e.g. 5, as Iterative
    RPO pairs a right answer against a wrong one); None keeps every untied pair."""
    max_rejected_score: float | None = None
    """Keep a pair only if its rejected response scored at most this (e.g. 3: under the
    miniature's rubric a wrong answer scores at most 3, a right one whose check erred once
    in three at least 3.7); None keeps every untied pair."""


class MetaJudge(_Section):
    """Meta-Rewarding (Wu et al. 2024, arXiv 2407.19594), label-free: the model also judges
    its own judgements (a meta-judge), and the judge is trained on the judge-preference
    pairs that makes, so that it improves instead of saturating. Per response, its best
    judgement by the meta-judge against its worst (only where the judgements disagree)."""

    share: float = Field(0.15, gt=0.0, le=1.0)
    """The most judge pairs may be of an update's pairs (the rest are answer pairs);
    NeMo-Aligner's recipe: more than ~15% makes the judge score everything 5."""


class Anchor(_Section):
    """Anchored rejection, from Temporal Self-Rewarding (arXiv 2508.06026), label-free:
    the rejected response of each pair is the worst of a fixed earlier model's responses
    to the prompt, judged by M_t, instead of M_t's own worst, so that chosen and rejected do
    not improve together and the gap between them does not close. (Its other half, choosing
    with the next model, is not built.)"""

    model: Literal["m0", "m1"] = "m0"
    """The anchor: `m0` (the miniature's model before step 0's SFT; on a chat model, the
    given model, as `m1`) or `m1` (the loop's start)."""


class Consistency(_Section):
    """CREAM (Wang et al. 2024, arXiv 2410.12735), label-free: the previous model (M_{t-1};
    at t = 1, the miniature's M0, and none on a chat model, whose C is then 1) judges the same responses; the consistency C of its ranking with M_t's
    (Kendall's tau per prompt, (tau + 1) / 2, averaged) makes soft labels: the update's
    preference loss is C * DPO(chosen, rejected) + (1 - C) * DPO(rejected, chosen). Needs a
    contrastive `dpo.loss_type: sigmoid`."""


class EFTRefresh(_Section):
    """A judge refreshed from a grounded signal (after Xiong et al. 2025, arXiv 2502.19613,
    and J-ZERO): each iteration M_t answers `problems` labelled problems and judges its own
    answers; where its verdict disagrees with the label's, a judge pair (the judgement the
    label supports against M_t's) joins the update. This remedy USES LABELS: with it the
    loop is no longer self-rewarding alone."""

    problems: int = Field(200, ge=1)
    """Labelled problems answered each iteration (the miniature: pool problems, with the
    task's answers; chat: the first rows of `data`, or of the task's human split)."""
    data: str | None = None
    """Chat: JSON lines with `prompt` and `answer`, labelled by the task's grader (e.g.
    `task.name: gsm8k`); None: the task's human split. The miniature uses its pool."""


class Remedies(_Section):
    """What the literature found for Self-Rewarding at 8B and below, each off by default:
    `meta_judge`, `anchor` and `consistency` are label-free; `eft_refresh` uses labels.
    Each step's record says what it did (judge pairs made, anchored pairs, the consistency,
    EFT pairs added)."""

    meta_judge: MetaJudge | None = None
    anchor: Anchor | None = None
    consistency: Consistency | None = None
    eft_refresh: EFTRefresh | None = None

    @property
    def on(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


class MiniatureSection(_Section):
    """The tiny model on the embedded task (addition and subtraction), where both abilities
    are measured exactly. Step 0 (M0 -> M1), the judge's held-out pairs, and the controls."""

    pretrain: TrainConfig | None = None
    """M0 is the tiny model first trained on the worked solutions alone with these settings,
    the stand-in for the paper's pretrained M0; None: M1 starts from the random model."""
    sft: TrainConfig = TrainConfig(steps=300)
    """M0 -> M1: SFT on IFT, prompt-writing and EFT examples; with `early_stopping`, until
    the greedy accuracy on `validation_size` pool problems (or the loss on their worked
    solutions) stops improving: a fair start, so that the compute-matched SFT control cannot
    win by training longer."""
    validation_size: int = Field(200, ge=1)
    """The last pool problems, M1's validation split: never the test set, and their worked
    solutions are never training rows (M1's EFT rows check M0's answers to pool problems:
    the inverse problems, solved)."""
    writing_size: int | None = Field(None, ge=1)
    """Prompt-writing examples in M1's data (None: as many as worked solutions)."""
    ift_repeats: int = Field(1, ge=1)
    """Times each instruction example (worked solution) appears in M1's data."""
    eft_size: int = Field(600, ge=0)
    """Judge examples (EFT) in M1's data: M0's own answers to pool problems, half right and
    half wrong, each with its exact judgement (`tasks.arithmetic_judge.eft_rows`)."""
    eval_pairs: int = Field(400, ge=1)
    """Held-out response pairs (test problems, M1's samples, one right answer and one wrong)
    on which the judge's pairwise accuracy is measured at every iteration."""
    pair_judge: Literal["self", "grader"] = "self"
    """Who scores the responses that make the preference pairs: the model itself (the
    method), or the task's grader (a diagnostic: the update with a perfect judge, to tell a
    weak judge from a weak update)."""
    controls: list[Literal["grader", "sft"]] = []
    """Controls run beside the method from the same M1, reported with it: `grader`: the same
    loop with the exact judge making the pairs (the upper bound of a judge); `sft`: M1
    trained on for the same steps and batch size as each update, on M1's own data instead of
    self-made pairs (compute-matched SFT)."""


class ChatSection(_Section):
    """Any chat model in `model.name_or_path`, the paper's judge prompt word for word."""

    seed_prompts: str | None = None
    """JSON lines of prompts (field `prompt` or `instruction`, plus `instances[0].input` when
    present), the pool shown few-shot; the last `eval_prompts` are held out. None: the
    Self-Instruct seed tasks shipped with selftrain."""
    eval_prompts: int = Field(8, ge=1)
    """Held-out prompts on which each model's greedy answers are judged."""
    min_chars: int = Field(10, ge=1)
    """Step 1: shorter new prompts are dropped."""
    max_chars: int = Field(1000, ge=1)
    """Step 1: longer new prompts are dropped."""
    finish: bool = False
    """Step 3: hand a judgement that ends without "Score:" back to the judge with `Score:`
    appended and read its most probable score on the scale (not in the paper; for small
    models that lose the format; see `LLMJudge.judgements`)."""


class SelfRewardingSection(_Section):
    """Self-Rewarding Language Models (Yuan et al. 2024): the model makes prompts, answers
    them, judges its answers, and trains with DPO on its best against its worst answer."""

    iterations: int = Field(2, ge=1)
    """Self-rewarding iterations after M1: 2 gives M1 -> M2 -> M3, as in the paper."""
    prompts: PromptWriting = PromptWriting()
    responses: Generation = Generation(k=4, temperature=0.7, top_p=0.9)
    """Step 2: responses per new prompt (`k`; the paper: 4, T=0.7, top-p 0.9)."""
    judge: JudgeConfig = JudgeConfig()
    pairs: PairsConfig = PairsConfig()
    dpo: DPOConfig = DPOConfig()
    """Step 5: DPO from M_t (the paper: beta 0.1). The miniature trains with `loss_type: sft`,
    the NLL of the chosen alone: on its model every contrastive loss lowered answer accuracy,
    even on perfect pairs (`experiments/dpo_arms.py`, docs/self-rewarding.md)."""
    remedies: Remedies = Remedies()
    """The remedies for small models (docs/self-rewarding.md measures each)."""
    miniature: MiniatureSection | None = None
    """The miniature's settings; the default variant when `chat` is not set."""
    chat: ChatSection | None = None
    """The chat variant's settings: set this section (`chat: {}` for its defaults) to run it."""

    @model_validator(mode="after")
    def _one_variant(self) -> SelfRewardingSection:
        if self.miniature is not None and self.chat is not None:
            raise ValueError("set one of self_rewarding.miniature and self_rewarding.chat: they are the two variants")
        if self.miniature is None and self.chat is None:  # the miniature by default (not counted as set)
            object.__setattr__(self, "miniature", MiniatureSection())
        if self.remedies.consistency is not None and self.dpo.loss_type != "sigmoid":
            raise ValueError("self_rewarding.remedies.consistency (CREAM) softens a contrastive loss: set "
                             f"dpo.loss_type: sigmoid (it is {self.dpo.loss_type})")
        return self

    @property
    def variant(self) -> Literal["miniature", "chat"]:
        return "chat" if self.chat is not None else "miniature"


class SelfRewardingConfig(TaskRun):
    name: str = "self-rewarding"
    method: Literal["self-rewarding"] = "self-rewarding"
    self_rewarding: SelfRewardingSection = SelfRewardingSection()

    @model_validator(mode="after")
    def _check(self) -> SelfRewardingConfig:
        named = self.model.name_or_path is not None
        if self.self_rewarding.chat is not None and not named:
            raise ValueError("self_rewarding.chat needs a chat model in model.name_or_path")
        if self.self_rewarding.miniature is not None:
            if named:
                raise ValueError("the self-rewarding miniature trains the tiny model; for the model in "
                                 "model.name_or_path set self_rewarding.chat (`chat: {}` for its defaults)")
            if self.task.name != "arithmetic" or sorted(self.task.settings.get("operations", ["+"])) != ["+", "-"]:
                raise ValueError("the self-rewarding miniature runs on the embedded task with both operations "
                                 "(task.arithmetic.operations: ['+', '-']): its judge checks an answer by the inverse one")
        return self


def demo_config(seed: int = 0) -> SelfRewardingConfig:
    """The Self-Rewarding miniature: `selftrain demo --method self-rewarding`. The data-limited
    regime (300 worked solutions, mostly 2-3 digits, fewer than the problems the model
    writes about), where the model's own answers can add something (docs/self-rewarding.md),
    and M1 trained until its validation accuracy stops improving."""
    return SelfRewardingConfig(
        name="arithmetic-self-rewarding",
        seed=seed,
        task=TaskConfig(settings={"operations": ["+", "-"], "human_size": 300,
                                  "human_digits": {1: 0.1, 2: 0.3, 3: 0.5, 4: 0.1}, "test_per_bucket": 150}),
        model=ModelConfig(tiny=TinyModelConfig(max_length=160)),
        self_rewarding=SelfRewardingSection(
            prompts=PromptWriting(n=1000), judge=JudgeConfig(max_new_tokens=64),
            pairs=PairsConfig(min_chosen_score=5.0, max_rejected_score=3.0),
            dpo=DPOConfig(steps=40, max_epochs=4, batch_size=64, learning_rate=1e-4, warmup_steps=5, logging_steps=10,
                          loss_type="sft"),
            miniature=MiniatureSection(pretrain=TrainConfig(steps=300),
                                       sft=TrainConfig(steps=1000, learning_rate=5e-4,
                                                       early_stopping=EarlyStopping(metric="accuracy", every=100, patience=3)),
                                       writing_size=100, eft_size=300, controls=["grader", "sft"])),
        eval=EvalConfig(k=1, temperature=1.0),
    )
