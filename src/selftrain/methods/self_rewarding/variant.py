"""What the loop (`iterate`) and the remedies ask of a Self-Rewarding variant: one line per
member. The miniature (`miniature.Miniature`) and the chat variant (`chat.Chat`) declare them
alike (data as dataclass fields, the rest as properties and methods); a third variant (a
base model without a chat template, say) implements this and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from selftrain import stages
from selftrain.config import SamplerConfig
from selftrain.methods.self_rewarding.config import Remedies
from selftrain.records import Pair, Problem


class Variant(Protocol):
    ctx: stages.RunContext
    """The run."""
    remedies: Remedies
    """The remedies this loop runs (a control runs none)."""
    pair_judge: Literal["self", "grader"]
    """Who scores step 4's responses: the model (the method) or the task's exact check (a control)."""
    m0: stages.Artifact | None
    """The model before M1: the anchor (`anchor.model: m0`) and iteration 1's previous judge; None: none."""

    @property
    def sampler(self) -> SamplerConfig | None:
        """How steps 1-3 and 6 sample the policy (None: the policy's own settings, raw text)."""

    @property
    def row(self) -> Callable[[Pair], dict[str, Any]]:
        """Step 5's DPO row of a pair (raw text, or conversational for a chat template)."""

    def m1(self) -> stages.Artifact:
        """Step 0: M1, the loop's start."""

    def write_prompts(self, group: str, policy: stages.Artifact) -> list[Problem]:
        """Step 1: new prompts written by `policy`, filtered."""

    def judge(self, group: str, policy: stages.Artifact, problems: list[Problem], responses: stages.Artifact,
              name: str = "judge") -> stages.Artifact:
        """Step 3: `policy` judges `responses` (an artifact with `scores` and `samples`)."""

    def anchor(self, m1: stages.Artifact) -> stages.Artifact:
        """The anchor model of `remedies.anchor`."""

    def meta_judge(self, group: str, policy: stages.Artifact, problems: list[Problem],
                   scores: stages.Artifact) -> stages.Artifact:
        """Meta-Rewarding's judge pairs from step 3's judgements."""

    def eft_refresh(self, group: str, policy: stages.Artifact) -> stages.Artifact:
        """The EFT refresh's judge pairs from labelled problems."""

    def pair_check(self, problems: list[Problem]) -> Callable[[list[Pair]], dict[str, Any]] | None:
        """Counts for step 4's record that a grader can give (how many chosen are truly right), or None."""

    def evaluate(self, group: str, model: stages.Artifact) -> None:
        """Step 6: the model's abilities, measured."""
