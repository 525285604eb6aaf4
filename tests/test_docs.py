"""The pages that show code run it: every Python block of docs/python-api.md, in order, in a
fresh folder, so the page cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def blocks(page: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(), re.S)


def test_the_python_api_page_runs(tmp_path):
    code = "\n".join(blocks(ROOT / "docs" / "python-api.md", "python"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ReST-EM iteration 1" in proc.stdout and (tmp_path / "runs" / "api-demo" / "iter-01" / "model").is_dir()
