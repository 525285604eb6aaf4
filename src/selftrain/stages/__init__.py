"""The stages every method is made of: generate, score, select, judge, pairs, train,
evaluate, and the run context they share. Each writes its outputs under the run folder
with a fingerprint of its inputs, so a method's loop is a few calls and holds no resume
bookkeeping of its own."""

from selftrain.stages.context import Artifact, Rows, RunContext, open_run
from selftrain.stages.curriculum import curriculum_pool, first_level, next_level
from selftrain.stages.decontaminate import decontaminate, decontaminate_problems
from selftrain.stages.evaluate import evaluate, evaluate_model, summarize_samples
from selftrain.stages.generate import generate, load_samples, sample_shards
from selftrain.stages.judge import evaluate_judge, judge, judge_accuracy, load_problems, write_prompts
from selftrain.stages.pairs import pairs
from selftrain.stages.score import load_scores, score, score_samples
from selftrain.stages.select import select
from selftrain.stages.train import build_tiny, chat_rows, dpo, human_rows, prompt_rows, sft, start_model

__all__ = [
    "Artifact", "Rows", "RunContext", "open_run", "decontaminate", "decontaminate_problems", "evaluate", "evaluate_model", "summarize_samples", "generate",
    "load_samples", "sample_shards", "pairs", "load_scores", "score", "score_samples", "select", "build_tiny",
    "chat_rows", "dpo", "human_rows", "prompt_rows", "sft", "start_model", "evaluate_judge", "judge", "judge_accuracy",
    "load_problems", "write_prompts", "curriculum_pool", "first_level", "next_level",
]
