"""The test suite's one fake: `ScriptedSampler`, a FAKE sampler (no model).

It answers each prompt with the next reply queued for it (`enqueue`, as simonw/llm's
MockModel does), or else by a rule `rule(prompt, seed, model)`; it records every prompt it
was asked (`prompts`) and continues a started answer by completing prompt + start, as a
raw-text model does. Behind `selftrain.samplers.serve.ModelServer` it plays an API teacher;
as the `scripted` sampler backend (`scripted_backend`) it plays every checkpoint of a run,
so that a method's whole loop runs in-process in seconds and a test can check which model
each stage used and which rows each training stage got (`tests/test_loops.py`).

The rules here are for the embedded arithmetic task, chat prompts, a Self-Instruct teacher and
a teacher that knows every worked solution (`oracle`); every FAKE a test uses comes from here.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from selftrain.records import SamplingParams

Rule = Callable[[str, int, str], str]
"""rule(prompt, seed, model) -> the completion."""


def digest(*parts: object) -> int:
    """A stable hash of the parts (for rules that must look arbitrary but repeat exactly)."""
    return int(hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest(), 16)


class ScriptedSampler:
    """FAKE sampler: queued replies first, then the rule; records every prompt."""

    tokenizer = None

    def __init__(self, rule: Rule | None = None, replies: Sequence[str] = (), model: str = "scripted"):
        self.rule, self.replies, self.model = rule, list(replies), model
        self.prompts: list[str] = []

    def enqueue(self, *replies: str) -> ScriptedSampler:
        self.replies.extend(replies)
        return self

    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        seen: Counter = Counter()
        out = []
        for p in prompts:
            self.prompts.append(p)
            if self.replies:
                out.append(self.replies.pop(0))
            elif self.rule is None:
                out.append("")
            else:
                out.append(self.rule(p, seed + seen[p], self.model))  # K copies of a prompt: K seeds
            seen[p] += 1
        return out

    def continue_texts(self, prompts: Sequence[str], starts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        return self.generate([p + s for p, s in zip(prompts, starts)], params, seed)


# ------------------------------------------------------------------ rules


def arithmetic(prompt: str, seed: int, model: str, knows: int = 2) -> str:
    """The embedded task as a model that knows `knows` problems in three: the worked
    solution, else the same steps with a final answer one too high. A few-shot prompt-writing request
    (problems one per line) gets a new well-formed problem. Which problems a checkpoint knows
    depends on its folder, so each model of a run answers differently."""
    from selftrain.tasks.arithmetic import aligned_solution, apply, operands

    parts = operands(prompt)
    if parts is None:  # problems one per line: write the next one
        lines = prompt.strip().splitlines()
        width = (len(lines[-1]) - 2) // 2 if lines else 4
        a, b = digest(prompt, seed) % 10 ** (width - 1), digest(seed, prompt) % 10 ** (width - 1)
        return f"{a:0{width}d}+{b:0{width}d}="
    a, op, b = parts
    width = len(prompt.split(op)[0])
    right = aligned_solution(a, b, width, op)
    if digest(prompt, seed, model) % 3 < knows:
        return right
    return right.rsplit("A:", 1)[0] + f"A:{apply(a, b, op) + 1}"


def chat(prompt: str, seed: int, model: str) -> str:
    """Chat prompts: a new task for a prompt-writing request, a score for an additive-5
    judgement, a winner for a pairwise one, else an answer."""
    h = digest(prompt, seed, model)
    if prompt.rstrip().endswith(":") and "Task " in prompt:
        return f" Describe topic number {h % 1000} in two sentences."
    if "Score: <total points>" in prompt:
        return f"It answers the question. Score: {1 + h % 5}"
    if "Winner: A" in prompt:
        return "Winner: A" if h % 2 else "Winner: B"
    return f"An answer ({h % 97})."


# ------------------------------------------------------------------ the backend


@contextmanager
def scripted_backend(rule: Rule = arithmetic) -> Iterator[list[ScriptedSampler]]:
    """While open, `sampler.backend: scripted` makes a `ScriptedSampler` over the model folder
    (it can load every checkpoint, continue and choose like a local model); yields the list
    of samplers made, in order."""
    from selftrain.samplers import BACKENDS, LOCAL, Backend, register_backend

    made: list[ScriptedSampler] = []

    def make(cfg, model: str, run_dir, turns=()) -> ScriptedSampler:
        made.append(ScriptedSampler(rule, model=model))
        return made[-1]

    register_backend(Backend("scripted", make, lambda cfg: LOCAL))
    try:
        yield made
    finally:
        BACKENDS.unregister("scripted")


TOPICS = ["volcanoes", "tax returns", "chess openings", "sourdough bread", "jet lag", "tide pools", "bird songs",
          "password managers", "the French revolution", "compound interest", "houseplants", "marathon training",
          "solar panels", "haiku", "sleep hygiene", "public speaking", "origami", "coral reefs", "job interviews",
          "electric cars", "beekeeping", "board games", "rainwater", "glaciers"]
AUDIENCES = ["a busy nurse", "retired sailors", "first-year students", "a small bakery", "city planners",
             "teenage gamers", "a village library", "night-shift workers"]
FORMS = ["Explain {t} to a ten-year-old in three sentences.", "List five common mistakes people make with {t}.",
         "Write a short persuasive paragraph about why {t} matter.", "Classify the sentiment of this review about {t}.",
         "Suggest a catchy title for a blog post on {t}."]


def _instruction(h: int) -> str:
    form = FORMS[h % len(FORMS)]
    if form.startswith("Classify"):
        return form.format(t=TOPICS[(h >> 4) % len(TOPICS)])
    return f"{form.format(t=TOPICS[(h >> 4) % len(TOPICS)])[:-1]} for {AUDIENCES[(h >> 9) % len(AUDIENCES)]}, " \
           f"mentioning {TOPICS[(h >> 14) % len(TOPICS)]}."


def self_instruct_teacher(prompt: str, seed: int, model: str = "") -> str:
    """A teacher of Self-Instruct: answers each kind of its requests plausibly."""
    prompt = prompt.strip()  # the server's plain chat format ends each message with a newline
    h = int(hashlib.sha256(f"{prompt}{seed}".encode()).hexdigest(), 16)
    if prompt.startswith("Come up with a series of tasks"):
        items = [_instruction(h >> (24 * i)) for i in range(3)]
        items += ["Draw a picture of a cat.", "Hi.", "Write a program that sorts numbers."]
        return "Here are more tasks:\n" + "\n".join(f"{9 + i}. {x}" for i, x in enumerate(items))
    task = prompt.rsplit("Task: ", 1)[-1]
    if "Is it classification?" in prompt.rsplit("Task: ", 1)[-1]:
        return " Yes" if "Classify" in task else " No"
    if prompt.endswith("Class label:"):
        return " Positive\nInput: I loved every minute.\nClass label: Negative\nInput: A waste of time."
    return f"Input: \nOutput: An answer to: {task.splitlines()[0]}\nExample 2\nOutput: An answer to: {task.splitlines()[0]}"


def oracle(prompt: str, seed: int = 0, model: str = "") -> str:
    """A teacher that knows every answer: the worked solution of a `0347+0085=`-style prompt."""
    from selftrain.tasks.arithmetic import aligned_solution

    a, b = re.match(r"(\d+)\+(\d+)=", prompt.strip()).groups()
    return aligned_solution(int(a), int(b), len(a))


def reversed_arithmetic(prompt: str, seed: int, model: str) -> str:
    """The embedded task in its reversed layout (`7430+5800=` -> `A:23400`) as a model whose
    skill fades with size: right on every sample up to 3 digits, on about half of them at 4
    and 5, never from 6; a proposer's request (problems one per line) gets a new problem of
    1 to 6 digits. What it writes and answers depends on the checkpoint's folder too."""
    from selftrain.tasks.arithmetic import reversed_solution

    lines = prompt.strip("\n").splitlines()
    m = re.fullmatch(r"(\d+)([+-])(\d+)=", lines[-1].strip()) if lines else None
    if prompt.endswith("\n") or m is None:  # a proposer's request: write the next problem
        width = len(m.group(1)) if m else 8
        h = digest(prompt, seed, model)
        digits = 1 + h % 6
        a = str(h % 10**digits).zfill(digits)[::-1]
        b = str((h >> 32) % 10**max(1, digits - 1)).zfill(1)[::-1]
        return a.ljust(width, "0") + "+" + b.ljust(width, "0") + "="
    sa, op, sb = m.groups()
    a, b, width = int(sa[::-1]), int(sb[::-1]), len(sa)
    digits = max(len(str(a)), len(str(b)))
    right = reversed_solution(a, b, width, op)
    chance = 1.0 if digits <= 3 else 0.5 if digits <= 5 else 0.0
    if digest(prompt, seed, model) % 100 < chance * 100:
        return right
    return "A:" + "9" * (width + 1)


# ------------------------------------------------------------------ vLLM on CUDA, which cannot run here


class RecordingLLM:
    """A STAND-IN for vLLM's `LLM` on a CUDA GPU (no GPU here): it records every call made to
    it, in order, in `calls` (shared with `record` for the calls of `torch.cuda` a test also
    patches), and holds a real model's weights as an engine would: in the engine's dtype
    (`dtype`), under vLLM's parameter names (`rename`: e.g. a LoRA wrapper's `base_layer`),
    so that the backend's reload check runs on real sums. `reload_weights` loads the new
    checkpoint unless `stale` (vLLM #32718: a reload that silently keeps the old weights)."""

    calls: list[tuple] = []
    stale = False
    dtype = "bfloat16"
    rename: Callable[[str], str] = staticmethod(lambda name: name)

    def __init__(self, model: str, **kwargs):
        import torch
        from safetensors.torch import load_file

        RecordingLLM.calls.append(("LLM", {"model": model, **kwargs}))
        self._load = lambda folder: {self.rename(k): v.to(getattr(torch, self.dtype)) for k, v in load_file(
            str(next(iter(sorted(__import__("pathlib").Path(folder).glob("*.safetensors")))))).items()}
        self.params = self._load(model)

        class _Config:
            max_model_len = kwargs.get("max_model_len", 2048)

        class _Core:
            def shutdown(inner):
                RecordingLLM.calls.append(("shutdown",))

        class _Engine:
            model_config = _Config()
            engine_core = _Core()

        self.llm_engine = _Engine()

    def _worker(self):
        params = self.params

        class _Model:
            def named_parameters(inner):
                return iter(params.items())

        class _Runner:
            def get_model(inner):
                return _Model()

        class _Worker:
            model_runner = _Runner()

        return _Worker()

    def collective_rpc(self, method, args=(), kwargs=None):
        name = method if isinstance(method, str) else method.__name__
        RecordingLLM.calls.append(("collective_rpc", name))
        if name == "reload_weights":
            if not RecordingLLM.stale:
                self.params.update(self._load(kwargs["weights_path"]))
            return [None]
        return [method(self._worker(), *args)]

    def sleep(self, level: int = 1):
        RecordingLLM.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        RecordingLLM.calls.append(("wake_up", tags))

    def reset_prefix_cache(self):
        RecordingLLM.calls.append(("reset_prefix_cache",))

    def generate(self, *args, **kwargs):
        RecordingLLM.calls.append(("generate",))
        raise NotImplementedError("RecordingLLM stands in for vLLM's engine lifecycle, not for sampling")


def record(name: str) -> Callable[..., None]:
    """A stand-in function that records its call in `RecordingLLM.calls` (for `torch.cuda.empty_cache`)."""
    return lambda *args, **kwargs: RecordingLLM.calls.append((name,))
