"""The skeleton every method shares: a toy method added as one module-like object runs
through the registry, the CLI's loader and the report; fingerprints cover the verifier's
settings, so changing one redoes exactly the stages that depend on it."""

import json
import re
from typing import Literal

import pytest

from selftrain import stages
from selftrain.artifacts import fingerprint, write_json
from selftrain.config import RunBase, _Section
from selftrain.errors import ConfigError
from selftrain.methods import Method, get_method, parse_config, register, unregister
from selftrain.report import kv_table, page
from selftrain.runs import run_method, summary


class ToySection(_Section):
    count: int = 3


class ToyConfig(RunBase):
    method: Literal["toy"] = "toy"
    toy: ToySection = ToySection()


def toy_run(ctx: stages.RunContext) -> None:
    n = ctx.cfg.toy.count
    ctx.stage("count", fingerprint("count", n), lambda: write_json(ctx.path("count.json"), list(range(n))) or {"items": n})


def toy_collect(run, cfg) -> dict:
    return {"method": "toy", "name": cfg.name, "items": json.loads(run.path("count.json").read_text())}


TOY = Method("toy", ToyConfig, toy_run, toy_collect, lambda m: page("toy", kv_table([("items", len(m["items"]))])),
             lambda m: [f"toy counted {len(m['items'])}"])


def test_a_method_registered_from_outside_runs_end_to_end(tmp_path):
    with pytest.raises(ConfigError, match="unknown method 'toy'"):
        get_method("toy")
    register(TOY)
    try:
        _runs_end_to_end(tmp_path)
    finally:
        unregister("toy")
    with pytest.raises(ConfigError, match="unknown method 'toy'"):  # nothing leaks into the next test
        get_method("toy")


def _runs_end_to_end(tmp_path):
    cfg = parse_config({"method": "toy", "name": "t", "toy": {"count": 4}})
    assert isinstance(cfg, ToyConfig)
    metrics = run_method(cfg, tmp_path / "run")
    assert metrics["items"] == [0, 1, 2, 3] and summary(metrics) == ["toy counted 4"]
    assert "items" in (tmp_path / "run" / "report.html").read_text()
    assert run_method(cfg, tmp_path / "run")["items"] == metrics["items"]  # the stage is skipped, the report rebuilt
    with pytest.raises(ConfigError, match="toy.count"):
        parse_config({"method": "toy", "toy": {"count": "many"}})


@pytest.mark.slow
def test_a_changed_verifier_setting_redoes_exactly_the_stages_that_depend_on_it(tmp_path, tiny_cfg_dict, capsys):
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "prompt": f"{i}+{i}=", "answer": str(2 * i)}) + "\n" for i in range(12)))
    d = {**tiny_cfg_dict, "task": {"name": "jsonl", "jsonl": {"path": str(data), "verifier": "exact", "marker": "A:"}}}
    d["rest_em"].update(iterations=1, compute_matched_baseline=False)
    d["rest_em"]["e_step"]["shard_size"] = 2048
    run_method(parse_config(d), tmp_path / "run")
    capsys.readouterr()
    d["task"]["jsonl"]["marker"] = "="
    run_method(parse_config(d), tmp_path / "run")
    out = capsys.readouterr().out
    done = set(re.findall(r"done\s+(\S+/\S+)", out))
    skipped = set(re.findall(r"skip\s+(\S+/\S+)", out))
    assert skipped == {"init/build", "sft/train", "pool/decontaminate", "iter-01/generate"}, out
    assert done == {"sft/evaluate", "iter-01/score", "iter-01/select", "iter-01/decontaminate", "iter-01/train",
                    "iter-01/evaluate"}, out


MY_TASK = '''
from selftrain.records import Problem
from selftrain.tasks.base import Task, TaskSettings


class ReverseSettings(TaskSettings):
    verifier: str = "exact"
    marker: str = "A:"


class ReverseTask(Task):
    """Reverse a word; the answer follows `A:`."""

    name = "reverse"
    config = ReverseSettings

    def _split(self, start, n, solved):
        words = ["".join(chr(97 + (i * 7 + j * 3) % 26) for j in range(3 + i % 3)) for i in range(start, start + n)]
        return [Problem(f"r{start + i}", f"{w}=", w[::-1], f" A:{w[::-1]}" if solved else None) for i, w in enumerate(words)]

    def human(self):
        return self._split(0, 12, True)

    def pool(self):
        return self._split(100, 12, False)

    def test(self):
        return self._split(200, 6, False)

    def verifier(self):
        from selftrain.verifiers import build_verifier

        return build_verifier(self.cfg.verifier, self.cfg, "task.settings.verifier")
'''

MY_VERIFIER = '''
from selftrain.records import Score
from selftrain.verifiers import VerifierKind


class Reversed:
    """Accepts a completion whose text after `A:` is the reference, reversed twice."""

    def describe(self):
        return {"kind": "reversed"}

    def __call__(self, problems, completions):
        return [Score(float(c.rpartition("A:")[2].strip()[::-1][::-1] == p.answer), "compared") for p, c in zip(problems, completions)]


KIND = VerifierKind("reversed", lambda settings: Reversed(), frozenset({"answer"}))
'''

MY_BACKEND = '''
from fakes import ScriptedSampler  # the FAKE model: the backend here is the extension under test

from selftrain.samplers import LOCAL, Backend


def _make(cfg, model, run_dir, turns=()):
    return ScriptedSampler(lambda prompt, seed, model: " A:" + prompt.strip().rstrip("=")[::-1], model=model)


BACKEND = Backend("mirror", _make, lambda cfg: LOCAL)
'''


def test_a_task_a_verifier_and_a_backend_of_your_own_are_one_file_each(tmp_path, monkeypatch):
    """CONTRIBUTING's "one way to extend": each kind is one file, named by import path in the
    config (or registered), found through the same registry pattern."""
    from selftrain.artifacts import RunDir

    for name, text in (("my_task.py", MY_TASK), ("my_verifier.py", MY_VERIFIER), ("my_backend.py", MY_BACKEND)):
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    cfg = parse_config({
        "name": "mine", "task": {"name": "my_task.py:ReverseTask", "settings": {"verifier": "my_verifier.py:KIND"}},
        "model": {"tiny": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_length": 32},
                  "sampler": {"backend": "my_backend.py:BACKEND"}},
        "rest_em": {"iterations": 1, "compute_matched_baseline": False, "sft": {"steps": 1, "batch_size": 4},
                    "e_step": {"k": 2, "max_new_tokens": 12}, "m_step": {"steps": 1, "batch_size": 4}},
        "eval": {"k": 1, "max_new_tokens": 12}})
    metrics = run_method(cfg, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    assert run.record("iter-01/score").info["correct"] == 12 * 2  # the backend answers, the verifier accepts
    assert metrics["rows"][-1]["test"]["accuracy"] == 1.0
    with pytest.raises(ConfigError, match=r"task.settings of my_task.py:ReverseTask:\n  verifier"):
        parse_config({"task": {"name": "my_task.py:ReverseTask", "settings": {"verifier": 3}}})
    with pytest.raises(ConfigError, match="sampler.backend: my_verifier.py:KIND is a VerifierKind, not a"):
        parse_config({"model": {"sampler": {"backend": "my_verifier.py:KIND"}}})
