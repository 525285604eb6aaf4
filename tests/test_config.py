"""Shipped configs load and validate; an invalid config fails before any work, naming the
field; an old-layout config names each moved field and its new place."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selftrain.errors import ConfigError
from selftrain.methods import complete, load_config, parse_config
from selftrain.methods.rest_em import RestEMConfig

ROOT = Path(__file__).resolve().parents[1]


def test_demo_config_file_is_the_embedded_default():
    # the task's settings with their defaults filled in, as every run writes its config.yaml
    assert load_config(ROOT / "configs" / "arithmetic-rest-em.yaml") == complete(RestEMConfig())


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    load_config(path)


def test_invalid_config_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"rest_em": {"e_step": {"k": 0}, "m_step": {"lr": 1}}}))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "rest_em.e_step.k" in str(err.value) and "rest_em.m_step.lr" in str(err.value)


def test_old_layout_names_each_moved_field_and_its_new_place():
    with pytest.raises(ConfigError) as err:
        parse_config({"sampling": {"k": 4, "batch_size": 64}, "train": {"steps": 9}, "rest_em": {"iterations": 2}})
    lines = str(err.value).splitlines()
    assert "old config layout" in lines[0]
    assert set(lines[1:]) == {"  sampling.k -> rest_em.e_step.k", "  sampling.batch_size -> model.sampler.batch_size",
                              "  train.steps -> rest_em.m_step.steps"}
    with pytest.raises(ConfigError) as err:
        parse_config({"method": "self-rewarding", "self_rewarding": {"judge_samples": 2, "beta": 0.2}})
    assert {"  self_rewarding.judge_samples -> self_rewarding.judge.samples",
            "  self_rewarding.beta -> self_rewarding.dpo.beta"} <= set(str(err.value).splitlines())
    with pytest.raises(ConfigError) as err:
        parse_config({"method": "self-instruct", "teacher": {"model": "m"}})
    assert "teacher.model -> self_instruct.teacher.model" in str(err.value)


def test_the_variant_of_self_rewarding_is_chosen_by_the_config():
    with pytest.raises(ConfigError, match="set self_rewarding.chat"):
        parse_config({"method": "self-rewarding", "model": {"name_or_path": "some/model"}})
    with pytest.raises(ConfigError, match="needs a chat model"):
        parse_config({"method": "self-rewarding", "self_rewarding": {"chat": {}}})
    chat = parse_config({"method": "self-rewarding", "model": {"name_or_path": "m"}, "self_rewarding": {"chat": {}}})
    assert chat.self_rewarding.variant == "chat" and chat.self_rewarding.miniature is None


def test_a_backend_without_a_needed_ability_is_refused_before_any_work():
    with pytest.raises(ConfigError) as err:
        parse_config({"method": "rest-em", "model": {"sampler": {"backend": "openai", "base_url": "http://127.0.0.1:1/v1"}}})
    assert "load a model folder" in str(err.value) and "Backends that can: hf" in str(err.value)
    with pytest.raises(ConfigError, match="unknown sampler backend 'nope'"):
        parse_config({"method": "distill", "distill": {"teacher": {"model": "m", "backend": "nope"}}})
    with pytest.raises(ConfigError, match="continue a started answer"):
        parse_config({"method": "self-rewarding", "model": {"name_or_path": "m", "sampler": {"backend": "openai", "chat": True}},
                      "self_rewarding": {"chat": {"finish": True}}})


def test_cli_rejects_invalid_config_before_any_work(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"rest_em": {"start_from": "nowhere"}}))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "selftrain", "run", str(bad), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "rest_em.start_from" in proc.stderr
    assert not out.exists()


def test_paper_config_is_the_demo_with_the_papers_m_step():
    paper = load_config(ROOT / "configs" / "arithmetic-rest-em-base.yaml")
    assert paper.rest_em.start_from == "base"
    demo = complete(RestEMConfig())
    same = demo.rest_em.model_copy(update={"start_from": "base"})
    assert paper.model_copy(update={"name": demo.name, "rest_em": same}) == demo.model_copy(update={"rest_em": same})


def test_rft_config_is_one_pass_from_init_on_human_plus_kept_data():
    rft = load_config(ROOT / "configs" / "arithmetic-rft.yaml").rest_em
    assert (rft.iterations, rft.start_from, rft.mix_human) == (1, "init", True)
    demo = RestEMConfig().rest_em
    # the same run otherwise; its one M-step as long as the demo's SFT and ReST-EM steps after it
    assert rft.m_step.steps == demo.m_step.steps * demo.iterations + demo.sft.steps
    same = {k: getattr(demo, k) for k in ("iterations", "start_from", "mix_human", "select", "m_step")}
    assert rft.model_copy(update=same) == demo


def test_python_dash_m_selftrain_cli_knows_every_command():
    for module in ("selftrain", "selftrain.cli"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True).stdout
        assert all(cmd in out for cmd in ("demo", "run", "report", "serve", "export")), out
