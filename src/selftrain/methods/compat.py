"""Configs written for earlier versions: where each old field moved, for one clear error.

The one place for compatibility shims (CONTRIBUTING.md): a config in an old layout is never
read as if it were new; it fails before any work, naming each old field and its new place.
Fingerprints carry no compatibility: a run folder made by an older version redoes the
stages whose inputs are now described differently (its files stay; nothing is mixed up).
"""

from __future__ import annotations

from typing import Any

OLD_SECTIONS = ("sampling", "select", "sft", "train", "teacher", "task", "model", "eval", "rest_em", "self_rewarding",
                "distill", "self_instruct", "grounded_qa")
"""The top-level sections of the one-config-for-all layout before per-method configs."""


def _within(section: str, moves: dict[str, str]) -> dict[str, str]:
    return {f"{section}.{old}": f"{section}.{new}" if new else "" for old, new in moves.items()}


MOVED: dict[str, dict[str, str]] = {
    "rest-em": {"sampling.batch_size": "model.sampler.batch_size", "sampling": "rest_em.e_step", "select": "rest_em.select",
                "sft": "rest_em.sft", "train": "rest_em.m_step"},
    "distill": {"sampling.batch_size": "model.sampler.batch_size", "sampling": "distill.generate", "select": "distill.select",
                "sft": "distill.student_sft", "teacher": "distill.teacher"},
    "self-rewarding": {
        "sampling.batch_size": "model.sampler.batch_size", "sampling.shard_size": "self_rewarding.responses.shard_size",
        "sft": "self_rewarding.miniature.sft", "train": "self_rewarding.dpo",
        **_within("self_rewarding", {
            # the one-section layout of the first version
            "beta": "dpo.beta", "nll_weight": "dpo.nll_weight", "new_prompts": "prompts.n", "shots": "prompts.shots",
            "prompt_temperature": "prompts.temperature", "responses_per_prompt": "responses.k",
            "temperature": "responses.temperature", "top_p": "responses.top_p", "max_new_tokens": "responses.max_new_tokens",
            "judge_samples": "judge.samples", "judge_temperature": "judge.temperature",
            "judge_max_new_tokens": "judge.max_new_tokens", "judge_finish": "chat.finish",
            "pair_judge": "miniature.pair_judge", "judge_eval_pairs": "miniature.eval_pairs",
            "pretrain_steps": "miniature.pretrain.steps", "eft_format": "",
            # the layout with `variant:` and both variants' fields side by side
            "variant": "miniature or self_rewarding.chat (set the section of the variant you run)",
            "pretrain": "miniature.pretrain", "writing_size": "miniature.writing_size",
            "ift_repeats": "miniature.ift_repeats", "eft_size": "miniature.eft_size", "controls": "miniature.controls",
            "judge.pair_judge": "miniature.pair_judge", "judge.eval_pairs": "miniature.eval_pairs",
            "judge.finish": "chat.finish", "seed_prompts": "chat.seed_prompts", "eval_prompts": "chat.eval_prompts",
            "min_chosen_score": "pairs.min_chosen_score", "max_rejected_score": "pairs.max_rejected_score"}),
    },
    "self-instruct": {"teacher": "self_instruct.teacher", **_within("self_instruct", {
        "temperature": "bootstrap.temperature", "top_p": "bootstrap.top_p", "max_new_tokens": "bootstrap.max_new_tokens",
        "min_words": "filter.min_words", "max_words": "filter.max_words", "novelty_threshold": "filter.novelty_threshold",
        "instances_per_task": "instances.per_task", "instance_max_new_tokens": "instances.max_new_tokens",
        "instance_shots": "instances.shots"})},
    "grounded-qa": {"teacher": "grounded_qa.teacher", **_within("grounded_qa", {
        "temperature": "write.temperature", "top_p": "write.top_p", "max_new_tokens": "write.max_new_tokens",
        "judge_samples": "judge.samples", "judge_temperature": "judge.temperature",
        "judge_max_new_tokens": "judge.max_new_tokens", "keep_threshold": "judge.keep_threshold"})},
}
"""Per method: old field (a dotted prefix) -> its new place ("" when it was removed)."""

FOR_EVERY_METHOD = {"task.jsonl.fields": "task.jsonl.columns"}
"""Fields that moved in every method's config: the jsonl task is the dataset task (`jsonl` a
name of it), whose field mapping is `columns`."""


def _leaves(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict) or not data:
        return [prefix]
    return [leaf for k, v in data.items() for leaf in _leaves(v, f"{prefix}.{k}" if prefix else str(k))]


def moved_fields(method: str, sections: set[str], data: dict[str, Any]) -> list[str]:
    """'old -> new' for each field of `data` written in an old layout: moved, or removed (an
    old section that the method's config (`sections`, its top-level fields) does not have)."""
    removed = {k: "" for k in OLD_SECTIONS if k not in sections}
    moves = {**removed, **FOR_EVERY_METHOD, **MOVED.get(method, {})}
    out = []
    for leaf in _leaves(data):
        matches = [old for old in moves if leaf == old or leaf.startswith(old + ".")]
        if matches:
            old = max(matches, key=len)
            new = moves[old]
            out.append(f"{leaf} -> {new + leaf[len(old):] if new else '(removed: ' + method + ' does not use it)'}")
    return out
