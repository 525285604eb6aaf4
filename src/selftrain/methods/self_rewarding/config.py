"""The Self-Rewarding run config: the loop's shared steps, then one sub-section per variant
(`miniature` or `chat`), so that a setting of one variant cannot be given to the other."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from selftrain.config import (
    ArithmeticConfig,
    DPOConfig,
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


class PairsConfig(_Section):
    """Step 4: which best-against-worst pairs are kept."""

    min_chosen_score: float | None = None
    """Keep a pair only if its chosen response scored at least this (e.g. 5, as Iterative
    RPO pairs a right answer against a wrong one); None keeps every untied pair."""
    max_rejected_score: float | None = None
    """Keep a pair only if its rejected response scored at most this (e.g. 3: under the
    miniature's rubric a wrong answer scores at most 3, a right one whose check erred once
    in three at least 3.7); None keeps every untied pair."""


class MiniatureSection(_Section):
    """The tiny model on the embedded task (addition and subtraction), where both abilities
    are measured exactly. Step 0 (M0 -> M1), the judge's held-out pairs, and the controls."""

    pretrain: TrainConfig | None = None
    """M0 is the tiny model first trained on the worked solutions alone with these settings,
    the stand-in for the paper's pretrained M0; None: M1 starts from the random model."""
    sft: TrainConfig = TrainConfig(steps=300)
    """M0 -> M1: SFT on IFT, prompt-writing and EFT examples."""
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
            if self.task.name != "arithmetic" or sorted(self.task.arithmetic.operations) != ["+", "-"]:
                raise ValueError("the self-rewarding miniature runs on the embedded task with both operations "
                                 "(task.arithmetic.operations: ['+', '-']): its judge checks an answer by the inverse one")
        return self


def demo_config(seed: int = 0) -> SelfRewardingConfig:
    """The Self-Rewarding miniature: `selftrain demo --method self-rewarding`."""
    return SelfRewardingConfig(
        name="arithmetic-self-rewarding",
        seed=seed,
        task=TaskConfig(arithmetic=ArithmeticConfig(operations=["+", "-"], human_size=1000,
                                                    human_digits={1: 0.1, 2: 0.3, 3: 0.3, 4: 0.3}, test_per_bucket=150)),
        model=ModelConfig(tiny=TinyModelConfig(max_length=160)),
        self_rewarding=SelfRewardingSection(
            prompts=PromptWriting(n=1000), judge=JudgeConfig(max_new_tokens=64),
            pairs=PairsConfig(min_chosen_score=5.0, max_rejected_score=3.0),
            dpo=DPOConfig(steps=40, max_epochs=4, batch_size=64, learning_rate=1e-4, warmup_steps=5, logging_steps=10,
                          loss_type="sft"),
            miniature=MiniatureSection(pretrain=TrainConfig(steps=300), sft=TrainConfig(steps=300, learning_rate=5e-4),
                                       writing_size=100, eft_size=1000, controls=["grader", "sft"])),
        eval=EvalConfig(k=1, temperature=1.0),
    )
