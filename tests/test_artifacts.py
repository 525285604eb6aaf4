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
