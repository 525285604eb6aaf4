"""README's first two commands are the ones users and CI run."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_opens_with_the_demo_and_the_test_commands():
    demo, tests = readme_commands()[:2]
    assert "torch==2.13.0" in demo and demo.rstrip().endswith("selftrain demo")
    assert "torch==2.13.0" in tests and tests.rstrip().endswith("pytest")
    # torch is installed before anything that depends on it
    assert demo.index("torch==2.13.0") < demo.index("-e .")


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1].strip() in (ROOT / ".ci" / "run").read_text()


def test_importing_the_package_does_no_work():
    code = "import sys, selftrain, selftrain.cli; print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
