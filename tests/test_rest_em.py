"""ReST-EM end to end on a tiny model: every stage runs, reruns skip, a killed run resumes
and ends with the metrics of an uninterrupted run."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def _write_cfg(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(cfg_path: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "selftrain.cli", "run", str(cfg_path), "--out", str(out)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )


def _comparable(metrics: dict) -> list:
    """Everything but wall seconds."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in metrics["rows"]]


def _killed_at(cfg_path: Path, out: Path, point: str) -> None:
    """Run until the named point, where the process SIGKILLs itself (selftrain.faults)."""
    proc = subprocess.run(
        [sys.executable, "-m", "selftrain.cli", "run", str(cfg_path), "--out", str(out)],
        capture_output=True, text=True, env={**ENV, "SELFTRAIN_KILL_AT": point}, timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, f"not killed at {point}: {proc.stderr[-2000:]}"


def test_full_run_then_rerun_skips_everything(tmp_path, tiny_cfg_dict):
    cfg = _write_cfg(tmp_path, tiny_cfg_dict)
    out = tmp_path / "run"
    first = _run(cfg, out)
    assert first.returncode == 0, first.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    groups = [r["group"] for r in metrics["rows"]]
    assert groups == ["sft", "compute-matched", "iter-01", "iter-02"]
    for name in ("samples.jsonl", "scores.jsonl", "selected.jsonl", "eval.json", "model/config.json"):
        assert (out / "iter-02" / name).exists(), name
    assert (out / "report.html").read_text().count("<svg") == 3
    assert metrics["rows"][1]["train_steps_total"] == 6 + 2 * 3

    again = _run(cfg, out)
    assert again.returncode == 0
    assert not re.search(r"done\s+\S+/", again.stdout) and len(re.findall(r"skip\s+\S+/", again.stdout)) >= 10, again.stdout
    assert _comparable(json.loads((out / "metrics.json").read_text())) == _comparable(metrics)


def test_killed_runs_resume_to_the_uninterrupted_metrics(tmp_path, tiny_cfg_dict):
    cfg = _write_cfg(tmp_path, tiny_cfg_dict)
    ref = tmp_path / "ref"
    assert _run(cfg, ref).returncode == 0
    expected = _comparable(json.loads((ref / "metrics.json").read_text()))

    out = tmp_path / "killed"
    # kill 1: in the middle of a training stage (the compute-matched baseline's)
    _killed_at(cfg, out, "compute-matched/train:step2")
    assert (out / "compute-matched" / "model.tmp").exists() and not (out / "compute-matched" / "model").exists()
    # kill 2: in the middle of an E-step, after its second shard is journaled
    _killed_at(cfg, out, "iter-01/samples.jsonl:shard1")
    assert len(list((out / "iter-01").glob("samples.jsonl.*.journal"))) == 1
    assert not (out / "iter-01" / "samples.jsonl").exists()
    # kill 3: in the E-step of iteration 2, once iteration 1 is done
    _killed_at(cfg, out, "iter-02/samples.jsonl:shard0")
    assert (out / "iter-01" / "eval.json").exists() and not (out / "iter-02" / "samples.jsonl").exists()
    resumed = _run(cfg, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r"skip\s+compute-matched/train", resumed.stdout), resumed.stdout
    assert _comparable(json.loads((out / "metrics.json").read_text())) == expected
    assert not list(out.rglob("*.journal")) and not list(out.rglob("model.tmp"))


def test_changed_config_redoes_only_downstream_stages(tmp_path, tiny_cfg_dict):
    cfg = _write_cfg(tmp_path, tiny_cfg_dict)
    out = tmp_path / "run"
    assert _run(cfg, out).returncode == 0
    tiny_cfg_dict["rest_em"]["select"] = {"max_per_problem": 1}
    cfg = _write_cfg(tmp_path, tiny_cfg_dict)
    proc = _run(cfg, out)
    assert proc.returncode == 0
    assert re.search(r"skip\s+sft/train", proc.stdout) and re.search(r"skip\s+iter-01/score", proc.stdout), proc.stdout
    assert re.search(r"done\s+iter-01/select", proc.stdout) and re.search(r"done\s+iter-01/train", proc.stdout)


def test_report_command_rebuilds_the_page(tmp_path, tiny_cfg_dict):
    cfg = _write_cfg(tmp_path, tiny_cfg_dict)
    out = tmp_path / "run"
    assert _run(cfg, out).returncode == 0
    (out / "report.html").unlink()
    proc = subprocess.run([sys.executable, "-m", "selftrain.cli", "report", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("report.html")
    assert "ReST-EM iteration 2" in (out / "report.html").read_text()
    bad = subprocess.run([sys.executable, "-m", "selftrain.cli", "report", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a run folder" in bad.stderr


def test_a_model_named_by_folder_runs_the_loop_instead_of_the_tiny_one(tmp_path, tiny_cfg_dict, tiny_model_dir):
    tiny_cfg_dict["model"] = {"name_or_path": str(tiny_model_dir)}
    tiny_cfg_dict["rest_em"].update(iterations=1, compute_matched_baseline=False)
    out = tmp_path / "run"
    proc = _run(_write_cfg(tmp_path, tiny_cfg_dict), out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "init").exists()  # nothing built: the named model is the start
    assert (out / "iter-01" / "model" / "config.json").exists()
    assert json.loads((out / "iter-01" / "model" / "config.json").read_text())["model_type"] == json.loads(
        (tiny_model_dir / "config.json").read_text()
    )["model_type"]
