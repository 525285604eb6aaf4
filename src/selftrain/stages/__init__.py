"""The stages every method is made of: generate, score, select, prompts, judge, pairs, ask,
filter, train, evaluate, decontaminate, curriculum, and the run context they share. Each
writes its outputs under the run folder with a fingerprint of its inputs, so a method's
loop is a few calls and holds no resume bookkeeping of its own."""

from selftrain.stages.ask import answered, ask
from selftrain.stages.context import Artifact, Rows, RunContext, group, open_run
from selftrain.stages.curriculum import curriculum_pool, first_level, next_level
from selftrain.stages.decontaminate import decontaminate, decontaminate_problems
from selftrain.stages.evaluate import evaluate, evaluate_model, summarize_samples
from selftrain.stages.filter import Filtered, filter_rows
from selftrain.stages.generate import generate, load_samples, sample_shards
from selftrain.stages.judge import evaluate_judge, judge, judge_accuracy, judge_pairs, pairwise
from selftrain.stages.pairs import anchored, best_vs_worst, consistency, kendall_tau, mix, pairs
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
    "Artifact", "Rows", "RunContext", "group", "open_run", "answered", "ask", "curriculum_pool", "first_level",
    "next_level", "decontaminate", "decontaminate_problems", "evaluate", "evaluate_model", "summarize_samples", "Filtered",
    "filter_rows", "generate", "load_samples", "sample_shards", "evaluate_judge", "judge", "judge_accuracy", "pairwise",
    "judge_pairs", "anchored", "best_vs_worst", "consistency", "kendall_tau", "mix", "pairs", "PromptFilter", "load_problems", "write_prompts", "load_scores", "score", "score_samples",
    "select", "select_correct", "build_tiny", "chat_rows", "dpo", "external_model", "made_rows", "human_rows", "prompt_rows", "sft", "start_model",
]
