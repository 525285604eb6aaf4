"""Your task, your data, your verifier: datasets by path (parquet, JSON lines, a `save_to_disk`
folder, chat rows), a task registered from outside the package, a verifier of your own that
raises, hangs or returns garbage, and the errors a new user meets first."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fakes import scripted_backend

from selftrain.artifacts import RunDir, read_jsonl
from selftrain.errors import ConfigError, TaskDataError
from selftrain.methods import parse_config
from selftrain.records import Problem
from selftrain.runs import CheckFailed, run_method
from selftrain.tasks import build_task, task_class
from selftrain.tasks.dataset import DatasetConfig
from selftrain.verifiers.function import FunctionVerifier, VerifierError

ROWS = [{"question": f"{a}+{b}=", "result": str(a + b), "worked": f"A:{a + b}" if a % 2 else None, "level": 1 + a % 3,
         "source": "mine"} for a in range(12) for b in range(3)]


def _dataset(tmp_path: Path, fmt: str) -> Path:
    import datasets

    ds = datasets.Dataset.from_list(ROWS)
    if fmt == "parquet":
        ds.to_parquet(tmp_path / "sums.parquet")
        return tmp_path / "sums.parquet"
    if fmt == "jsonl":
        (tmp_path / "sums.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        return tmp_path / "sums.jsonl"
    datasets.DatasetDict({"train": ds.select(range(30)), "test": ds.select(range(30, 36))}).save_to_disk(tmp_path / "saved")
    return tmp_path / "saved"


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "save_to_disk"])
def test_a_dataset_by_path_with_a_column_mapping(tmp_path, fmt):
    path = _dataset(tmp_path, fmt)
    cfg = DatasetConfig(path=str(path), test_split="test" if fmt == "save_to_disk" else None, verifier="exact",
                        columns={"prompt": "question", "answer": "result", "solution": "worked", "level": "level"})
    task = build_task(parse_config({"task": {"name": "dataset", "dataset": cfg.model_dump()}}).task)
    pool, test, human = task.pool(), task.test(), task.human()
    assert len(pool) + len(test) == 36 and len(test) == (6 if fmt == "save_to_disk" else 18)
    assert {p.id for p in pool}.isdisjoint(p.id for p in test)
    assert human and all(p.solution == f"A:{p.answer}" for p in human)
    assert {task.level(p) for p in pool} == {1, 2, 3} and pool[0].meta["columns"]["source"] == "mine"
    assert set(pool[0].meta["columns"]) == {"question", "result", "worked", "level", "source"}  # every column, by its own name
    p = pool[0]
    assert [s.accepted for s in task.verifier()([p, p], [f"x A:{p.answer}", "A:-1"])] == [True, False]


def test_chat_rows_give_the_prompt_and_the_human_solution(tmp_path):
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"{i}+1?"},
                          {"role": "assistant", "content": f"A:{i + 1}"}], "answer": str(i + 1)} for i in range(8)]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = build_task(parse_config({"task": {"name": "dataset", "dataset": {
        "path": str(tmp_path / "chat.jsonl"), "verifier": "exact", "columns": {"prompt": None, "messages": "messages"}}}}).task)
    p = task.human()[0]
    assert p.prompt.endswith("+1?") and p.solution == f"A:{p.answer}" and p.meta["system"] == "Be brief."


def test_a_missing_column_is_named_with_the_columns_there_are(tmp_path):
    path = _dataset(tmp_path, "jsonl")
    task = build_task(parse_config({"task": {"name": "dataset", "dataset": {"path": str(path), "verifier": "exact"}}}).task)
    with pytest.raises(TaskDataError, match=r"columns.prompt: .* has no column 'prompt'; its columns: question, result, worked"):
        task.pool()


def test_a_hub_dataset_offline_fails_before_any_stage_naming_the_local_setting(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cfg = parse_config({"task": {"name": "gsm8k"}})  # the hub's openai/gsm8k by default
    with pytest.raises(TaskDataError, match=r"task.gsm8k \(train_path unset\): cannot load 'openai/gsm8k'.*give a local path"):
        run_method(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "init").exists()  # no model was built first


def test_an_unknown_field_names_the_nearest_known_one():
    with pytest.raises(ConfigError, match="rest_em.iteration: unknown field; did you mean 'iterations'"):
        parse_config({"rest_em": {"iteration": 3}})
    with pytest.raises(ConfigError, match=r"task.name: unknown task 'gsm9k' \(known: arithmetic, dataset, deduction, gsm8k"):
        parse_config({"task": {"name": "gsm9k"}})


TOY_TASK = '''
"""A task of your own: reverse a word (the answer is the word backwards)."""
from selftrain.config import _Section
from selftrain.records import Problem
from selftrain.tasks.base import Task
from selftrain.verifiers.exact import ExactAnswerVerifier, text_answer

WORDS = ["stone", "river", "cloud", "maple", "tiger", "lemon", "piano", "candle", "rocket", "garden", "violet", "pepper"]


class Settings(_Section):
    human: int = 4


class ReverseTask(Task):
    name = "reverse"
    config = Settings

    def _split(self, words, with_solution):
        return [Problem(w, f"{w}>", w[::-1], f"A:{w[::-1]}" if with_solution else None) for w in words]

    def human(self):
        return self._split(WORDS[: self.cfg.human], True)

    def pool(self):
        return self._split(WORDS[:8], False)

    def test(self):
        return self._split(WORDS[8:], False)

    def verifier(self):
        return ExactAnswerVerifier(marker="A:", normalize=text_answer)
'''


def test_a_task_of_your_own_by_import_path_runs_rest_em(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(TOY_TASK)
    monkeypatch.chdir(tmp_path)
    assert task_class("my_tasks.py:ReverseTask").name == "reverse"
    with pytest.raises(ConfigError, match=r"task.settings of my_tasks.py:ReverseTask:\n  human: Input should be a valid integer"):
        parse_config({"task": {"name": "my_tasks.py:ReverseTask", "settings": {"human": "many"}}})
    cfg = parse_config({
        "task": {"name": "my_tasks.py:ReverseTask", "settings": {"human": 6}},
        "model": {"tiny": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_length": 32}},
        "rest_em": {"iterations": 1, "compute_matched_baseline": False, "sft": {"steps": 2, "batch_size": 4},
                    "e_step": {"k": 2, "max_new_tokens": 12}, "m_step": {"steps": 2, "batch_size": 4}},
        "eval": {"k": 1, "max_new_tokens": 12}})
    metrics = run_method(cfg, tmp_path / "run")
    assert [r["group"] for r in metrics["rows"]] == ["sft", "iter-01"] and metrics["rows"][0]["test"]["n_problems"] == 4
    assert "settings:\n    human: 6" in (tmp_path / "run" / "config.yaml").read_text()
    assert RunDir(tmp_path / "run").record("sft/train").info["examples"] == 6


CHECKS = '''
import time


def right_sum(prompts, completions, answer, **columns):
    """1.0 for the right sum, 0.0 for a wrong one; None when there is no `A:` at all."""
    out = []
    for completion, want in zip(completions, answer):
        if "A:" not in completion:
            out.append(None)
        elif "boom" in completion:
            raise ValueError("cannot read " + completion)
        elif "sleep" in completion:
            time.sleep(30)
        elif "junk" in completion:
            out.append("yes")
        else:
            out.append(float(completion.rsplit("A:", 1)[1].strip() == want))
    return out


def too_few(prompts, completions, **columns):
    return [1.0]


def one_argument(completions):
    return [1.0] * len(completions)
'''


def test_a_verifier_of_your_own_raises_hangs_returns_garbage_and_nothing_is_accepted_or_lost(tmp_path):
    (tmp_path / "checks.py").write_text(CHECKS)
    target = f"{tmp_path / 'checks.py'}:right_sum"
    verifier = FunctionVerifier(target, timeout=3.0, batch_size=4)
    p = Problem("p", "2+2=", "4")
    try:
        scores = verifier([p] * 6, ["A:4", "A:5", "no answer", "A:4 boom", "A:4 junk", "A:4"])
        assert [s.value for s in scores] == [1.0, 0.0, None, None, None, 1.0]
        assert "raised ValueError: cannot read A:4 boom (checks.py:" in scores[3].reason
        assert "returned 'yes'" in scores[4].reason and "could not judge" in scores[2].reason
        start = time.monotonic()
        hung = verifier([p] * 3, ["A:4", "A:4 sleep", "A:4"])  # one batch hangs: halved until the hanging row alone is None
        assert [s.value for s in hung] == [1.0, None, 1.0] and "timed out after 3 s" in hung[1].reason
        assert time.monotonic() - start < 15  # three deadlines: the batch, the half with the hang, the hang alone
        assert [s.value for s in verifier([p], ["A:4"])] == [1.0]  # a fresh worker after the hang
        with pytest.raises(VerifierError, match="returned 1 values for 2 completions"):
            FunctionVerifier(f"{tmp_path / 'checks.py'}:too_few")([p, p], ["a", "b"])
    finally:
        verifier.close()
    with pytest.raises(ConfigError, match=r"task.dataset.verifier: .*one_argument\(completions\) must take \(prompts, completions"):
        parse_config({"task": {"name": "jsonl", "jsonl": {"path": "x.jsonl", "verifier": f"{tmp_path / 'checks.py'}:one_argument"}}})
    with pytest.raises(ConfigError, match=r"task.dataset.verifier: .*checks.py has no 'nope' \(it has: .*right_sum"):
        parse_config({"task": {"name": "jsonl", "jsonl": {"path": "x.jsonl", "verifier": f"{tmp_path / 'checks.py'}:nope"}}})
    with pytest.raises(ConfigError, match="no file"):
        parse_config({"task": {"name": "jsonl", "jsonl": {"path": "x.jsonl", "verifier": "missing/checks.py:right_sum"}}})


def test_changing_your_verifier_redoes_the_scoring_and_what_follows_only(tmp_path):
    (tmp_path / "checks.py").write_text(CHECKS)
    path = _dataset(tmp_path, "jsonl")
    cfg = {"task": {"name": "dataset", "dataset": {"path": str(path), "verifier": f"{tmp_path / 'checks.py'}:right_sum",
                                                   "columns": {"prompt": "question", "answer": "result", "solution": "worked"}}},
           "model": {"tiny": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_length": 48},
                     "sampler": {"backend": "scripted"}},
           "rest_em": {"iterations": 1, "compute_matched_baseline": False, "sft": {"steps": 1, "batch_size": 4},
                       "e_step": {"k": 2, "max_new_tokens": 20}, "m_step": {"steps": 1, "batch_size": 4}},
           "eval": {"k": 1, "max_new_tokens": 20}}
    with scripted_backend(lambda prompt, seed, model: f"A:{sum(map(int, prompt.rstrip('=').split('+')))}"):
        run_method(parse_config(cfg), tmp_path / "run")
        first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "iter-01").glob("*.done.json")}
        assert RunDir(tmp_path / "run").record("iter-01/score").info["correct"] == 2 * 18
        (tmp_path / "checks.py").write_text(CHECKS.replace('completion.rsplit("A:", 1)[1].strip() == want',
                                                           'completion.rsplit("A:", 1)[1].strip() != want'))
        with pytest.raises(CheckFailed, match="0 of 10 human solutions accepted"):  # the check sees the broken verifier
            run_method(parse_config(cfg), tmp_path / "run")
        run_method(parse_config(cfg), tmp_path / "run", check=False)  # --no-check: run with it anyway
        again = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "iter-01").glob("*.done.json")}
    assert again["generate.done.json"] == first["generate.done.json"]
    assert all(again[n] != first[n] for n in ("score.done.json", "select.done.json", "train.done.json"))
    assert RunDir(tmp_path / "run").record("iter-01/score").info["correct"] == 0
    assert read_jsonl(tmp_path / "run" / "iter-01" / "scores.jsonl")[0]["reason"].startswith("reward 0")


def test_a_chat_model_is_prompted_and_trained_through_its_chat_template(tmp_path):
    """With `sampler.chat`, every E-step and evaluation prompt is the last user turn after the
    system and few-shot turns, rendered by the model's own template; the M-step trains on the
    same conversation, the loss on the assistant's turn only (TRL's conversational
    prompt-completion rows)."""
    from selftrain import stages
    from selftrain.config import TinyModelConfig
    from selftrain.samplers.chat import ChatTemplateSampler
    from selftrain.training.tiny import save_tiny

    model = tmp_path / "chat-model"
    save_tiny(model, TinyModelConfig(arch="llama", hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                                     max_length=256), seed=0, chat=True)
    cfg = parse_config({
        "task": {"arithmetic": {"human_size": 20, "pool_size": 8, "test_per_bucket": 2, "test_digits": [1, 2]}},
        "model": {"name_or_path": str(model), "sampler": {"chat": True, "system": "Add.", "fewshot": 2}},
        "rest_em": {"iterations": 1, "compute_matched_baseline": False, "sft": {"steps": 2, "batch_size": 4},
                    "e_step": {"k": 1, "max_new_tokens": 8}, "m_step": {"steps": 1, "batch_size": 4}},
        "eval": {"k": 1, "max_new_tokens": 8}})
    with stages.open_run(cfg, tmp_path / "run") as ctx:
        first, second = ctx.human[0], ctx.human[1]
        sampler = ctx.sampler(stages.start_model(ctx, cfg.model))
        assert isinstance(sampler, ChatTemplateSampler)
        assert sampler.format("9+9=") == (f"<|system|>\nAdd.\n<|user|>\n{first.prompt}\n<|assistant|>\n{first.solution}\n"
                                          f"<|user|>\n{second.prompt}\n<|assistant|>\n{second.solution}\n"
                                          "<|user|>\n9+9=\n<|assistant|>\n")
        row = ctx.chat_rows([{"prompt": "9+9=", "completion": "A:18"}])[0]
        assert row["prompt"][-1] == {"role": "user", "content": "9+9="} and len(row["prompt"]) == 6
        assert row["completion"] == [{"role": "assistant", "content": "A:18"}]
    metrics = run_method(cfg, tmp_path / "run")
    assert RunDir(tmp_path / "run").record("sft/train").info["steps"] == 2 and metrics["rows"][-1]["group"] == "iter-01"
