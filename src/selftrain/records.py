"""The plain types that flow between stages.

Every stage reads and writes these as JSON lines, so a run folder can be inspected with
`head`, diffed between runs, and loaded by `datasets.load_dataset("json", ...)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One problem of a task.

    `answer` is the reference final answer the verifier checks against; `solution` is a
    worked solution where the task has one (the "human data"), else None.
    """

    id: str
    prompt: str
    answer: str
    solution: str | None = None
    bucket: str = "all"
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Problem:
        return cls(**row)


@dataclass(frozen=True)
class Sample:
    """One completion sampled for one problem; `index` counts samples of that problem."""

    problem_id: str
    index: int
    prompt: str
    completion: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Sample:
        """A sample from its JSON row (other fields a stage added travel in the file only)."""
        return cls(row["problem_id"], row["index"], row["prompt"], row["completion"])


@dataclass(frozen=True)
class Score:
    """A verifier's verdict on one sample.

    `value` is 1.0 for accepted and 0.0 for rejected (a judge may give any number), or
    None when the verifier could not judge; `reason` says why, in a few words.
    `answer` is the final answer the verifier read from the completion, if any, so that
    majority voting can reuse it without parsing again.
    """

    value: float | None
    reason: str
    answer: str | None = None

    @property
    def accepted(self) -> bool:
        return self.value is not None and self.value > 0.5

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Score:
        return cls(**row)


@dataclass(frozen=True)
class Pair:
    """A preference pair for one prompt: the chosen response scored higher than the rejected."""

    problem_id: str
    prompt: str
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Pair:
        return cls(**row)

    def dpo_row(self) -> dict[str, str]:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


@dataclass(frozen=True)
class SamplingParams:
    """How a completion is sampled: the one parameter type every backend takes."""

    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    top_k: int = 0
    """0 turns top-k filtering off."""
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    """A completion ends before the first of these strings (which it does not include)."""

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def cut(self, text: str) -> str:
        """`text` up to the first stop string.

        >>> SamplingParams(stop=("\\n\\n", "Q:")).cut("A: 4\\nQ: 5")
        'A: 4\\n'
        """
        for s in self.stop:
            at = text.find(s)
            if at >= 0:
                text = text[:at]
        return text
