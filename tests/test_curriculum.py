"""The easy-to-hard curriculum (Lee et al. 2025) in ReST-EM: the reversed arithmetic
layout, majority voting without a verifier, which levels each E-step samples, when the
next level joins, and the loop end to end with its control."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selftrain import stages
from selftrain.artifacts import fingerprint, write_jsonl
from selftrain.errors import ConfigError
from selftrain.methods import parse_config
from selftrain.records import Problem
from selftrain.stages.curriculum import CurriculumConfig
from selftrain.tasks import task_settings
from selftrain.tasks.arithmetic import ArithmeticConfig, ArithmeticTask, reversed_answer
from selftrain.verifiers.exact import ExactAnswerVerifier
from selftrain.verifiers.majority import MajorityVote

ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def _task(**kw) -> ArithmeticTask:
    return ArithmeticTask(ArithmeticConfig(layout="reversed", human_size=60, human_digits={1: 0.5, 2: 0.5},
                                           pool_size=80, pool_digits={1: 1, 2: 1, 3: 1, 4: 1},
                                           test_per_bucket=5, test_digits=[1, 2, 3, 4], **kw))


def test_reversed_layout_writes_every_number_units_first_and_grades_the_reversed_answer():
    task = _task()
    assert {len(p.prompt) for p in task.test()} == {10}  # two 4-column operands, sign and '='
    for p in task.human():
        a, b = p.meta["a"], p.meta["b"]
        assert p.prompt == f"{a:04d}"[::-1] + "+" + f"{b:04d}"[::-1] + "="
        assert p.solution == "A:" + f"{a + b:05d}"[::-1]
    grader = task.grader()
    p = task.human()[0]
    wrong = "A:" + f"{int(p.answer) + 1:05d}"[::-1]
    assert [s.accepted for s in grader([p, p, p], [p.solution, wrong, "A:" + p.answer.zfill(5)])] == [True, False, p.answer == p.answer[::-1]]
    assert {task.level(p) for p in task.pool()} == {1, 2, 3, 4}
    assert max(task.level(p) for p in task.human()) == 2
    with pytest.raises(ValueError, match="reversed layout"):
        ArithmeticConfig(layout="reversed", verifier="steps")


def test_majority_vote_length_filter_and_the_reason_it_gives():
    read = ExactAnswerVerifier(marker="A:", normalize=reversed_answer).extract  # any length: the length filter decides
    vote = MajorityVote(read, min_agreement=0.5, length_tolerance=0.0)
    p = Problem(id="x", prompt="7430+5800=", answer="432")
    scores = vote([p] * 6, ["A:23400", "A:23400", "A:23400", "A:234000", "A:33400", "oops"])
    assert [s.value for s in scores] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert "length filter" in scores[3].reason and "minority" in scores[4].reason and "format" in scores[5].reason
    assert "(4 of 6)" in scores[0].reason  # the long answer votes, then the length filter drops it
    strict = ArithmeticTask(ArithmeticConfig(layout="reversed")).grader().extract  # the task's: 5 digits exactly
    assert (strict("A:23400"), strict("A:234000")) == ("432", None)
    q = Problem(id="y", prompt="1000+1000=", answer="2")
    both = vote([p, q, p, q, q], ["A:23400", "A:20000", "A:23400", "A:30000", "A:20000"])  # problems judged apart
    assert [s.value for s in both] == [1.0, 1.0, 1.0, 0.0, 1.0]
    tie = vote([q, q], ["A:20000", "A:30000"])  # each answer holds half, neither leads
    assert [s.value for s in tie] == [0.0, 0.0] and "no single answer" in tie[0].reason
    with pytest.raises(ValueError):
        MajorityVote(read, min_agreement=0)


def _scores(ctx, group: str, problems: list[Problem], accepted: dict[int, float]) -> stages.Artifact:
    """Two samples per problem, with the share `accepted[level]` of each level's accepted."""
    folder = ctx.path(group)
    folder.mkdir(parents=True, exist_ok=True)
    samples, scores = [], []
    seen: dict[int, int] = {}
    for p in problems:
        level = ctx.task.level(p)
        for i in range(2):
            n = seen[level] = seen.get(level, 0) + 1
            samples.append({"problem_id": p.id, "index": i, "prompt": p.prompt, "completion": "A:0"})
            ok = n <= accepted.get(level, 0.0) * 2 * sum(ctx.task.level(q) == level for q in problems)
            scores.append({"problem_id": p.id, "index": i, "value": float(ok), "reason": "test"})
    write_jsonl(folder / "samples.jsonl", samples)
    write_jsonl(folder / "scores.jsonl", scores)
    return stages.Artifact.of(fingerprint(group, accepted), "scores", scores=folder / "scores.jsonl",
                              samples=folder / "samples.jsonl")


def test_the_pool_grows_a_level_when_the_hardest_is_solved_and_mastered_levels_thin(tmp_path):
    cfg = parse_config({"method": "rest-em", "task": {"arithmetic": {
        "layout": "reversed", "human_size": 60, "human_digits": {1: 0.5, 2: 0.5}, "pool_size": 400,
        "pool_digits": {1: 1, 2: 1, 3: 1, 4: 1}, "test_per_bucket": 5, "test_digits": [1, 2, 3, 4]}}})
    curriculum = CurriculumConfig(threshold=0.5, mastered_share=0.5, max_level=3)
    with stages.open_run(cfg, tmp_path / "run") as ctx:
        level = stages.first_level(ctx, ctx.human, curriculum)
        assert level == 2  # the human data's hardest
        pool = stages.curriculum_pool(ctx, "iter-01", ctx.pool, level, curriculum)
        by_level = {n: sum(ctx.task.level(p) == n for p in pool) for n in (1, 2, 3)}
        full = {n: sum(ctx.task.level(p) == n for p in ctx.pool) for n in (1, 2)}
        assert by_level[3] == 0 and by_level[2] == full[2] and by_level[1] == round(full[1] / 2)
        # below the threshold at the hardest level: no new level, whatever the easier ones do
        assert stages.next_level(ctx, "iter-01", _scores(ctx, "iter-01", pool, {1: 1.0, 2: 0.4}), pool, 2, curriculum, ctx.pool) == 2
        record = json.loads((tmp_path / "run" / "iter-01" / "curriculum.done.json").read_text())["info"]
        assert record["solve_rate"] == {"1": 1.0, "2": 0.4} and record["next"] == 2
        assert stages.next_level(ctx, "iter-02", _scores(ctx, "iter-02", pool, {2: 0.5}), pool, 2, curriculum, ctx.pool) == 3
        pool3 = stages.curriculum_pool(ctx, "iter-03", ctx.pool, 3, curriculum)
        assert {ctx.task.level(p) for p in pool3} == {1, 2, 3}
        # max_level 3: level 4 never joins, though the pool has it
        assert stages.next_level(ctx, "iter-03", _scores(ctx, "iter-03", pool3, {3: 1.0}), pool3, 3, curriculum, ctx.pool) == 3


def test_a_task_without_levels_is_refused_with_the_field_to_set(tmp_path):
    rows = [{"prompt": f"q{i}", "answer": str(i)} for i in range(10)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = parse_config({"method": "rest-em", "task": {"name": "jsonl", "jsonl": {"path": str(tmp_path / "d.jsonl")}}})
    with stages.open_run(cfg, tmp_path / "run") as ctx, pytest.raises(ConfigError, match="columns.level"):
        stages.curriculum_pool(ctx, "iter-01", ctx.pool, 1, CurriculumConfig())
    write_jsonl(tmp_path / "d.jsonl", [{**r, "lvl": 1 + i % 3} for i, r in enumerate(rows)])
    cfg = parse_config({"method": "rest-em", "task": {"name": "jsonl", "jsonl": {"path": str(tmp_path / "d.jsonl"), "columns": {"level": "lvl"}}}})
    with stages.open_run(cfg, tmp_path / "run2") as ctx:
        assert {ctx.task.level(p) for p in stages.curriculum_pool(ctx, "iter-01", ctx.pool, 2, CurriculumConfig())} == {1, 2}


@pytest.mark.slow
def test_curriculum_run_with_majority_voting_and_its_control(tmp_path):
    cfg = {
        "method": "rest-em",
        "task": {"arithmetic": {"layout": "reversed", "human_size": 60, "human_digits": {1: 0.5, 2: 0.5}, "pool_size": 40,
                                "pool_digits": {1: 1, 2: 1, 3: 1, 4: 1}, "test_per_bucket": 4, "test_digits": [1, 2, 3, 4]}},
        "model": {"tiny": {"arch": "llama", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "max_length": 24}},
        "rest_em": {"iterations": 2, "compute_matched_baseline": False,
                    "sft": {"steps": 6, "batch_size": 8, "logging_steps": 3},
                    "e_step": {"k": 4, "max_new_tokens": 8},
                    "m_step": {"steps": 2, "batch_size": 8, "logging_steps": 2},
                    "filter": {"kind": "majority", "min_agreement": 0.25},
                    "curriculum": {"threshold": 0.01, "control": True}},
        "eval": {"k": 1, "max_new_tokens": 8},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "selftrain.cli", "run", str(path), "--out", str(out)],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = [json.loads(line)["problem_id"] for line in (out / "iter-01" / "samples.jsonl").read_text().splitlines()]
    flat = [json.loads(line)["problem_id"] for line in (out / "flat-iter-01" / "samples.jsonl").read_text().splitlines()]
    digits = lambda ids: {max(len(x) for x in i.split("-", 1)[1].split("+")) for i in ids}  # noqa: E731
    assert digits(first) == {1, 2} and digits(flat) == {1, 2, 3, 4}  # the curriculum starts at the human data's levels
    schedule = json.loads((out / "iter-01" / "curriculum.done.json").read_text())["info"]
    rate = schedule["solve_rate"]["2"]
    assert schedule["next"] == (3 if rate >= 0.01 else 2)
    metrics = json.loads((out / "metrics.json").read_text())
    kinds = [r["kind"] for r in metrics["rows"]]
    assert kinds == ["baseline", "rest-em", "rest-em", "flat", "flat"]
    kept = metrics["rows"][1]["estep"]
    assert 0 <= kept["truly_right"] <= kept["kept"]
    page = (out / "report.html").read_text()
    assert "Level schedule" in page and "no curriculum" in page and "kept truly right" in page


def test_the_curriculum_config_is_valid_and_reaches_eight_digits():
    cfg = parse_config(yaml.safe_load(Path("configs/arithmetic-curriculum.yaml").read_text()))
    assert cfg.rest_em.curriculum is not None
    task = task_settings(cfg.task)
    assert set(task.human_digits) == {1, 2, 3} and task.test_digits == list(range(1, 9))
