"""Shipped configs load and validate; an invalid config fails before any work, naming the field."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selftrain.config import RunConfig, load_config
from selftrain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_demo_config_file_is_the_embedded_default():
    assert load_config(ROOT / "configs" / "arithmetic-rest-em.yaml") == RunConfig()


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    load_config(path)


def test_invalid_config_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sampling": {"k": 0}, "train": {"lr": 1}}))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "sampling.k" in str(err.value) and "train.lr" in str(err.value)


def test_cli_rejects_invalid_config_before_any_work(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"rest_em": {"start_from": "nowhere"}}))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "selftrain.cli", "run", str(bad), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "rest_em.start_from" in proc.stderr
    assert not out.exists()


def test_paper_config_is_the_demo_with_the_papers_m_step():
    paper = load_config(ROOT / "configs" / "arithmetic-rest-em-base.yaml")
    assert paper.rest_em.start_from == "base"
    demo = RunConfig()
    assert paper.model_copy(update={"name": demo.name, "rest_em": demo.rest_em}) == demo


def test_rft_config_is_one_pass_from_init_on_human_plus_kept_data():
    rft = load_config(ROOT / "configs" / "arithmetic-rft.yaml")
    assert (rft.rest_em.iterations, rft.rest_em.start_from, rft.rest_em.mix_human) == (1, "init", True)
    demo = RunConfig()
    # the same run otherwise; its one M-step as long as the demo's SFT and ReST-EM steps after it
    assert rft.train.steps == demo.train.steps * demo.rest_em.iterations + demo.sft.steps
    same = {"name": demo.name, "rest_em": demo.rest_em, "select": demo.select, "train": demo.train}
    assert rft.model_copy(update=same) == demo
