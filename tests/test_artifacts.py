"""Run folders: atomic writes, stage skip and redo, the shard journal, the lock."""

import json
import multiprocessing as mp

import pytest

from selftrain.artifacts import RunDir, ShardJournal, fingerprint, read_jsonl, write_jsonl
from selftrain.errors import RunLockedError


def test_stage_runs_once_then_skips_and_redoes_when_its_fingerprint_changes(tmp_path):
    run, calls = RunDir(tmp_path), []

    def work():
        calls.append(1)
        write_jsonl(run.path("g", "out.jsonl"), [{"x": len(calls)}])
        return {"rows": 1}

    first = run.stage("g/s", "fp1", work, log=lambda m: None)
    again = run.stage("g/s", "fp1", work, log=lambda m: None)
    assert len(calls) == 1 and again.seconds == first.seconds and again.info == {"rows": 1}
    run.stage("g/s", "fp2", work, log=lambda m: None)
    assert len(calls) == 2 and read_jsonl(run.path("g", "out.jsonl")) == [{"x": 2}]


def test_a_failing_stage_leaves_no_marker(tmp_path):
    run = RunDir(tmp_path)

    def boom():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run.stage("g/s", "fp", boom, log=lambda m: None)
    assert run.record("g/s") is None


def test_journal_drops_an_unfinished_shard_and_a_torn_line(tmp_path):
    path = tmp_path / "samples.jsonl.journal"
    j = ShardJournal(path)
    j.append(0, [{"i": 0}, {"i": 1}])
    j.append(1, [{"i": 2}])
    with open(path, "a") as f:  # shard 2 was being written when the process was killed
        f.write(json.dumps({"i": 3}) + "\n" + '{"i": 4')
    j2 = ShardJournal(path)
    assert j2.done == {0: [{"i": 0}, {"i": 1}], 1: [{"i": 2}]}
    j2.append(2, [{"i": 3}, {"i": 4}])
    assert ShardJournal(path).done[2] == [{"i": 3}, {"i": 4}]


def test_fingerprint_ignores_key_order_but_not_values():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_a_verifier_and_a_stage_rule_have_the_same_fingerprint_in_every_process():
    """A resumed run is a new process: sets of strings iterate in another order there
    (PYTHONHASHSEED), and the math verifier's code reads frozensets of names."""
    import os
    import subprocess
    import sys

    script = ("from selftrain.artifacts import describe, fingerprint\n"
              "from selftrain.verifiers.math import MathVerifier\n"
              "from selftrain.methods.rest_em import self_train\n"
              "print(fingerprint(describe(MathVerifier()), describe(self_train), {'s': {'x', 'y', 'z'}}))\n")
    seen = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(seen) == 1, seen


def _hold_lock(path, ready, release):
    with RunDir(path).lock():
        ready.set()
        release.wait(10)


def test_a_second_process_cannot_take_a_locked_run(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunLockedError, match="another selftrain process"):
            with RunDir(tmp_path).lock():
                pass
    finally:
        release.set()
        p.join(10)
    with RunDir(tmp_path).lock():  # free again once the holder is gone
        pass


def test_a_stage_whose_files_moved_or_vanished_is_redone_not_skipped(tmp_path):
    run, calls = RunDir(tmp_path), []
    out = run.path("g", "out.jsonl")

    def work():
        calls.append(1)
        write_jsonl(out, [{"x": 1}])
        return {}

    run.stage("g/s", "fp", work, log=lambda m: None, outputs={"rows": out})
    assert run.output("g/s", "rows") == out and json.loads(run.path("g/s.done.json").read_text())["outputs"] == {"rows": "g/out.jsonl"}
    run.stage("g/s", "fp", work, log=lambda m: None, outputs={"rows": out})
    assert len(calls) == 1
    out.unlink()  # deleted: redone
    run.stage("g/s", "fp", work, log=lambda m: None, outputs={"rows": out})
    assert len(calls) == 2
    moved = run.path("g", "rows.jsonl")  # a newer version of the stage writes another file: redone
    said = []
    run.stage("g/s", "fp", lambda: (write_jsonl(moved, []), {})[1], log=said.append, outputs={"rows": moved})
    assert any("not where this version writes them" in s for s in said) and moved.exists()


RULES = '''
from helpers import keep_even


def even_rows(rows):
    """Keep the rows with an even x."""
    from selftrain.stages import Filtered
    return Filtered([r for r in rows if keep_even(r["x"])])
'''


def test_editing_a_callee_of_a_stage_rule_redoes_the_stage_on_resume_and_a_docstring_edit_does_not(tmp_path, monkeypatch):
    """The one fingerprint rule for code (CONTRIBUTING): a stage's fingerprint covers its rule
    and everything the rule reaches by name, in another module of your own too; docstrings
    and comments do not count."""
    import importlib
    import sys

    from selftrain import stages
    from selftrain.methods import parse_config

    code = tmp_path / "code"
    code.mkdir()
    (code / "rules.py").write_text(RULES)
    helpers = code / "helpers.py"
    helpers.write_text('def keep_even(x):\n    """Even."""\n    return x % 2 == 0\n')
    monkeypatch.syspath_prepend(str(code))
    source = tmp_path / "rows.jsonl"
    write_jsonl(source, [{"x": i} for i in range(6)])
    cfg = parse_config({"name": "rules"})

    def run_filter() -> tuple[list, str]:
        for name in ("rules", "helpers"):
            sys.modules.pop(name, None)
        rules = importlib.import_module("rules")
        said = []
        with stages.open_run(cfg, tmp_path / "run") as ctx:
            monkeypatch.setattr(ctx, "stage", _recording(ctx.stage, said))
            kept = stages.filter_rows(ctx, "g", "even", [stages.Artifact.of("rows-fp", "rows", rows=source)], rules.even_rows)
        return [r["x"] for r in read_jsonl(kept.path)], said[-1]

    assert run_filter() == ([0, 2, 4], "ran")
    assert run_filter() == ([0, 2, 4], "skipped")
    helpers.write_text('def keep_even(x):\n    """Even, said otherwise."""\n    # a comment\n    return x % 2 == 0\n')
    assert run_filter() == ([0, 2, 4], "skipped")  # docstring and comment: nothing to redo
    helpers.write_text('def keep_even(x):\n    """Even."""\n    return x % 2 == 1\n')  # a callee's bug fixed
    assert run_filter() == ([1, 3, 5], "ran")


def _recording(stage, said):
    def run(name, fp, work, outputs=None):
        ran = []
        rec = stage(name, fp, lambda: (ran.append(1), work())[1], outputs=outputs)
        said.append("ran" if ran else "skipped")
        return rec

    return run
