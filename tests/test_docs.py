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


def test_the_walkthrough_runs_as_written(tmp_path):
    """docs/your-task.md: its files written as the page shows them, its commands run."""
    page = ROOT / "docs" / "your-task.md"
    files = {"make_data.py": blocks(page, "python")[0], "sort_checks.py": blocks(page, "python")[1],
             "sort-rest-em.yaml": blocks(page, "yaml")[0]}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    bin_dir = Path(sys.executable).parent
    for command in blocks(page, "bash")[0].strip().splitlines():
        proc = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env={"OMP_NUM_THREADS": "2", "PATH": f"{bin_dir}:/usr/bin:/bin"})
        assert proc.returncode == 0, f"{command}: {proc.stderr[-3000:]}"
    import json

    rows = json.loads((tmp_path / "runs" / "sort" / "metrics.json").read_text())["rows"]
    accuracy = {r["label"]: r["test"]["accuracy"] for r in rows}
    assert accuracy["ReST-EM iteration 3"] > accuracy["SFT on human data"] + 0.1  # the page's claim, on this machine's numerics
    assert (tmp_path / "runs" / "sort" / "report.html").is_file()


def test_the_settings_reference_is_the_config_classes():
    """docs/config.md is `selftrain settings`: every field of every config class, its type,
    default and documentation (regenerate: `selftrain settings > docs/config.md`)."""
    from selftrain.api import settings_reference

    assert (ROOT / "docs" / "config.md").read_text() == settings_reference(), \
        "docs/config.md is out of date: selftrain settings > docs/config.md"
    undocumented = [line.split("|")[1].strip() for line in settings_reference().splitlines()
                    if line.startswith("| `") and line.rstrip().endswith("|  |")]
    assert not undocumented, f"settings without a docstring where declared: {undocumented}"
