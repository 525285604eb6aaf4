"""Distillation on the embedded task with tiny models: an API teacher (a real HTTP server on
localhost) writes the data of round 1, the round-1 student is the teacher of round 2, the
data carry lineage, and a rerun redoes nothing.

The API teacher is `ScriptedSampler(oracle)`, a FAKE (no model): it writes the task's own worked solution
for each prompt, so that the verifier keeps its data; a tiny model trained for a few steps
in a test solves nothing."""

from __future__ import annotations

import json

from fakes import ScriptedSampler, oracle

from selftrain.methods import parse_config
from selftrain.runs import run_method
from selftrain.samplers.serve import ModelServer


def test_distill_rounds_and_lineage(tiny_cfg_dict, tmp_path):
    import datasets

    rest_em = tiny_cfg_dict["rest_em"]
    d = {k: v for k, v in tiny_cfg_dict.items() if k != "rest_em"}
    with ModelServer(ScriptedSampler(oracle)) as server:
        d.update(name="distill-test", method="distill",
                 distill={"rounds": 2, "student_sft": rest_em["sft"], "generate": rest_em["e_step"],
                          "teacher": {"backend": "openai", "base_url": server.url, "model": "oracle", "chat": False}})
        cfg = parse_config(d)
        metrics = run_method(cfg, tmp_path / "run")
    run = tmp_path / "run"
    assert [r["group"] for r in metrics["rows"]] == ["student-human", "round-01", "round-02"]
    r1, r2 = metrics["rows"][1]["data"], metrics["rows"][2]["data"]
    assert r1["samples"] == 24 * 2 and r1["correct"] == 48 and r1["kept"] == 24  # 2 identical samples: one kept
    assert r2["samples"] == 48 and r2["kept"] < 24  # the round-1 student is a poor teacher
    rows = datasets.load_dataset("json", data_files=str(run / "round-01" / "data.jsonl"), split="train")
    assert len(rows) == 24 and all(r["lineage"]["model"] == "oracle" and r["lineage"]["iteration"] == 1 for r in rows)
    first = [json.loads(x) for x in (run / "round-02" / "data.jsonl").read_text().splitlines()]
    assert all(r["lineage"]["model"] == "round-01/model" for r in first)
    # the dataset card: Hugging Face's format, naming the teacher, the filters' counts, decontamination
    card = (run / "round-01" / "README.md").read_text()
    assert card.startswith("---\nlicense: other") and "**Written by:** oracle" in card and "| select | kept: 24" in card
    assert "dropped as\ncontaminated: 0" in card
    assert len(datasets.load_dataset(str(run / "round-01"), split="train")) == 24  # the card's config: data.jsonl only
    report = (run / "report.html").read_text()
    assert "student, human data only" in report and "student distilled, round 2" in report
    marks = {str(p): p.stat().st_mtime_ns for p in run.rglob("*.done.json")}
    again = run_method(cfg, run)  # the server is gone: everything must come from the run folder
    assert again["rows"] == metrics["rows"]
    assert {str(p): p.stat().st_mtime_ns for p in run.rglob("*.done.json")} == marks
