"""benchmarks/gpu_check.py on a machine without a GPU (as here, and in CI): every GPU part says
why it is skipped, and the tiny ReST-EM run with LoRA M-steps runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_gpu_check_skips_what_a_cpu_cannot_run_and_runs_the_rest(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: run the check itself (python benchmarks/gpu_check.py)")
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--quick", "--sizes", "1b", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = {r["part"]: r for r in json.loads(out.read_text())}
    assert parts["machine"]["cuda"] is False and "trl" in parts["machine"]["versions"]
    for name in ("hf-sampling", "sft", "dpo", "vllm"):
        assert "a CUDA GPU" in parts[name]["skipped"], parts[name]
    run = parts["rest-em"]
    assert "failed" not in run and run["backend"] == "hf" and run["adapter"] is True
    assert set(run["accuracy"]) == {"SFT on human data", "ReST-EM iteration 1", "ReST-EM iteration 2"}
