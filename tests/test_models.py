"""The tiny model and tokenizer are ordinary HF folders; the sampler is deterministic."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selftrain.errors import ModelLoadError
from selftrain.samplers.base import SamplingParams
from selftrain.samplers.hf import HFSampler


def test_tiny_folder_loads_with_auto_classes(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tok("347+85=\n7+5+0=12 A:432")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "347+85=\n7+5+0=12 A:432"
    assert model.config.vocab_size == len(tok)
    n = sum(p.numel() for p in model.parameters())
    assert 5_000 < n < 100_000  # the test-sized config (the demo's is ~0.6M)


def test_sampler_is_deterministic_per_seed_and_greedy_matches_generate(tiny_model_dir):
    s = HFSampler(tiny_model_dir, batch_size=3)
    prompts = ["1+2=", "34+5=", "1+2=", "678+90=", "9+9="]
    params = SamplingParams(temperature=1.0, max_new_tokens=12)
    a, b = s.generate(prompts, params, seed=7), s.generate(prompts, params, seed=7)
    assert a == b
    assert a != s.generate(prompts, params, seed=8)
    assert a[0] != a[2] or len(set(a)) > 1  # samples of the same prompt are drawn independently

    greedy = s.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=12), seed=0)
    s.engine = "generate"
    assert s.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=12), seed=0) == greedy
    tok, model = s.tokenizer, s.model
    for p, got in zip(prompts, greedy):
        ids = tok(p, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**ids, do_sample=False, max_new_tokens=12, pad_token_id=tok.pad_token_id)
        assert got == tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    import pytest

    with pytest.raises(ModelLoadError, match="cannot load a tokenizer"):
        HFSampler(tmp_path / "nope")


def test_top_k_and_top_p_restrict_the_draw():
    from selftrain.samplers.hf import _pick

    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]]).repeat(4000, 1)
    gen = torch.Generator().manual_seed(0)
    # top-k 2: only the two best tokens are ever drawn, in the softmax ratio e^3 : e^2
    drawn = _pick(logits, SamplingParams(temperature=1.0, top_k=2), gen)
    assert set(drawn.tolist()) == {0, 1}
    assert abs((drawn == 0).float().mean().item() - 1 / (1 + torch.e**-1)) < 0.03
    # top-p 0.6: token 0 alone has p = 0.64 >= 0.6, so nothing else is drawn
    assert set(_pick(logits, SamplingParams(temperature=1.0, top_p=0.6), gen).tolist()) == {0}
    # top-p 0.7 keeps tokens 0 and 1 (0.64 < 0.7 <= 0.88)
    assert set(_pick(logits, SamplingParams(temperature=1.0, top_p=0.7), gen).tolist()) == {0, 1}
    assert set(_pick(logits[:3], SamplingParams(temperature=0.0), gen).tolist()) == {0}


def test_generate_stage_resumes_its_own_shards_and_never_reuses_another_configs(tiny_model_dir, tmp_path):
    from selftrain import stages
    from selftrain.records import Problem

    problems = [Problem(id=str(i), prompt=f"{i}+{i}=", answer=str(2 * i)) for i in range(6)]
    sampler = HFSampler(tiny_model_dir, batch_size=4)
    params = SamplingParams(temperature=1.0, max_new_tokens=6)
    out = tmp_path / "samples.jsonl"
    full = stages.sample_shards(sampler, problems, 2, params, out, seed=3, shard_size=5, key="A")
    # a journal left by a run killed after shard 0 under the same key is resumed ...
    journals = list(tmp_path.glob("*.journal"))
    assert journals == []
    from selftrain.artifacts import fingerprint

    key = fingerprint("A", 3, 2, 5, params, [p.id for p in problems])
    from selftrain.artifacts import ShardJournal

    forged = [{**s.to_json(), "completion": "FROM JOURNAL"} for s in full if s.problem_id in {"0", "1"}][:5]
    ShardJournal(tmp_path / f"samples.jsonl.{key}.journal").append(0, forged)
    resumed = stages.sample_shards(sampler, problems, 2, params, out, seed=3, shard_size=5, key="A")
    assert sum(s.completion == "FROM JOURNAL" for s in resumed) == len(forged)  # shard 0 not redone
    # ... but under another key (a changed config or model) it is thrown away
    ShardJournal(tmp_path / f"samples.jsonl.{key}.journal").append(0, forged)
    other = stages.sample_shards(sampler, problems, 2, params, out, seed=3, shard_size=5, key="B")
    assert not any(s.completion == "FROM JOURNAL" for s in other)
    assert list(tmp_path.glob("*.journal")) == []


def test_tiny_dropout_and_activation_reach_the_saved_config(tmp_path):
    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    small = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    save_tiny(tmp_path / "g", TinyModelConfig(**small), seed=0)
    g = AutoModelForCausalLM.from_pretrained(tmp_path / "g").config
    assert (g.resid_pdrop, g.embd_pdrop, g.attn_pdrop, g.activation_function) == (0.0, 0.0, 0.0, "gelu")
    save_tiny(tmp_path / "g2", TinyModelConfig(**small, dropout=0.1, activation="gelu_new"), seed=0)
    g2 = AutoModelForCausalLM.from_pretrained(tmp_path / "g2").config
    assert (g2.resid_pdrop, g2.attn_pdrop, g2.activation_function) == (0.1, 0.1, "gelu_new")
    save_tiny(tmp_path / "l", TinyModelConfig(arch="llama", **small, dropout=0.2), seed=0)
    ll = AutoModelForCausalLM.from_pretrained(tmp_path / "l").config
    assert (ll.attention_dropout, ll.hidden_act) == (0.2, "silu")


def test_a_tiny_nope_model_has_no_positional_encoding(tmp_path):
    """`arch: nope`: with one layer and no positions, the last token's output cannot tell the
    order of the tokens before it; with rotary positions (`llama`) it can."""
    import torch

    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    small = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    same = {}
    for arch in ("nope", "llama"):
        save_tiny(tmp_path / arch, TinyModelConfig(arch=arch, **small), seed=0)
        model = AutoModelForCausalLM.from_pretrained(tmp_path / arch).eval()
        with torch.no_grad():
            a = model(torch.tensor([[5, 6, 7, 8]])).logits[0, -1]
            b = model(torch.tensor([[6, 5, 7, 8]])).logits[0, -1]
        same[arch] = torch.allclose(a, b, atol=1e-5)
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "nope").config.model_type == "smollm3"
    assert same == {"nope": True, "llama": False}
