"""The stages methods are made of; each writes its outputs under the run folder with a
fingerprint of its inputs, settings and rule, and returns what it wrote by name, so a
method's loop is a few calls and holds no resume bookkeeping of its own.

What is shared, the loop's vocabulary (used by more than one method, or the core of the
generate -> score -> select -> train -> evaluate loop): generate, score, select, prompts,
judge, pairs, ask, filter, train, evaluate, decontaminate, curriculum, and the run context.
What one method alone uses lives in a sub-module named after it, imported from there:
`stages.self_rewarding` (anchored pairs, CREAM's consistency, judge pairs and their mix, the
judge's own measurements).
"""

from selftrain.stages import own_problems, self_rewarding
from selftrain.stages.ask import answered, ask, asked
from selftrain.stages.context import Artifact, Rows, RunContext, group, open_run
from selftrain.stages.curriculum import curriculum_pool, first_level, next_level
from selftrain.stages.decontaminate import decontaminate, decontaminate_problems, training_data
from selftrain.stages.evaluate import evaluate, evaluate_model, evaluation, summarize_samples
from selftrain.stages.filter import Filtered, filter_rows
from selftrain.stages.generate import generate, load_samples, sample_shards
from selftrain.stages.judge import judge
from selftrain.stages.pairs import best_vs_worst, pairs
from selftrain.stages.prompts import PromptFilter, load_problems, write_prompts
from selftrain.stages.score import load_scores, score, score_samples
from selftrain.stages.select import select, select_correct
from selftrain.stages.train import (
    build_tiny,
    chat_rows,
    dpo,
    external_model,
    human_rows,
    made_rows,
    prompt_rows,
    sft,
    start_model,
)

__all__ = [
    "Artifact", "Rows", "RunContext", "group", "open_run", "answered", "ask", "asked", "training_data", "curriculum_pool", "first_level",
    "next_level", "decontaminate", "decontaminate_problems", "evaluate", "evaluate_model", "evaluation",
    "summarize_samples", "Filtered", "filter_rows", "generate", "load_samples", "sample_shards", "judge", "best_vs_worst",
    "pairs", "PromptFilter", "load_problems", "write_prompts", "load_scores", "score", "score_samples", "select",
    "select_correct", "build_tiny", "chat_rows", "dpo", "external_model", "made_rows", "human_rows", "prompt_rows", "sft",
    "start_model", "own_problems", "self_rewarding",
]
