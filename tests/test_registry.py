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
