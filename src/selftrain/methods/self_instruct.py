"""Self-Instruct: Wang et al. 2022, *Self-Instruct: Aligning Language Models with
Self-Generated Instructions* (arXiv 2212.10560).

    pool = the 175 human seed tasks
    repeat until `num_instructions` new ones are kept:
        1. each request shows 8 instructions: 6 from the seed pool, 2 from those generated so
           far (all 8 from the seed pool at first), numbered; the teacher continues the list
        2. every new instruction is filtered: 4 to 150 words; no word a language model
           cannot act on (image, graph, picture, file, map, draw, plot, go to); not
           "Write a program"; not starting with punctuation or a non-ASCII character
        3. kept only if its ROUGE-L to every instruction in the pool is < 0.7
           (`selftrain.novelty`: exactly rouge-score's verdicts, pruned by token overlap)
    4. classification or not: the teacher answers "Is it classification?" few-shot
    5. instances: output-first for classification tasks (a class label, then an input for
       it), input-first for the others (an input, then its output)
    6. instances filtered: empty output, output equal to its input, exact duplicates, and
       the same input with different outputs are dropped

Run it:  `selftrain run configs/self-instruct.yaml`  (the teacher is any local model or
OpenAI-compatible endpoint, `self_instruct.teacher`).

Writes `RUN/data.jsonl`: one row per instance (instruction, input, output,
is_classification) with its lineage (method, round, teacher model, request id), which
`datasets.load_dataset("json", data_files=...)` loads; `RUN/instructions.jsonl` (the new
instructions and their most similar pool instruction); `RUN/failed-requests.jsonl` for an
API teacher's rows that failed every retry; `RUN/metrics.json` and `RUN/report.html`.

Deviations from the paper and its code:
- The few-shot prompts of steps 4 and 5 are built from the seed tasks themselves (their
  `is_classification` labels and instances), in the paper's form and with its task
  descriptions, not the paper's hand-written example lists.
- Instructions are not `capitalize()`d (the original code lowercases all but the first
  letter, which mangles names); a chat teacher's preamble before the first numbered item
  is dropped; a completion cut at `max_new_tokens` keeps its whole items (the original
  drops the request); there are no stop sequences.
- Each round's requests use the pool as it was at the round's start, so a round's requests
  can be sent in parallel (the original sends 5 at a time, the same way).
"""

from __future__ import annotations

import json
import logging
import random
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from selftrain import stages
from selftrain.artifacts import RunDir, atomic_write_text, derive_seed, fingerprint, read_jsonl, write_jsonl
from selftrain.config import RunBase, TeacherConfig, _Section
from selftrain.methods import Method
from selftrain.novelty import NoveltyFilter
from selftrain.report import escape, kv_table, page
from selftrain.samplers.base import Failed, Sampler, SamplingParams, generate_or_fail
from selftrain.tasks.real import read_rows


class SelfInstructSection(_Section):
    """Self-Instruct (Wang et al. 2022): the teacher bootstraps instructions from a seed pool."""

    teacher: TeacherConfig = TeacherConfig()
    """The model that writes the instructions and instances."""
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


class SelfInstructConfig(RunBase):
    name: str = "self-instruct"
    method: Literal["self-instruct"] = "self-instruct"
    self_instruct: SelfInstructSection = SelfInstructSection()


def run(ctx: stages.RunContext) -> None:
    """Self-Instruct, steps numbered as in the docstring."""
    sec = ctx.cfg.self_instruct
    seeds = load_seed_tasks(sec.seed_tasks)
    teacher = ctx.sampler(sec.teacher.model, sec.teacher)
    # steps 1-3: rounds of requests, each new instruction filtered and kept only if novel
    instructions = bootstrap(ctx, teacher, seeds)
    # step 4: classification or not
    classified = classify(ctx, teacher, seeds, instructions)
    # steps 5-6: instances (output-first for classification), filtered
    instances = make_instances(ctx, teacher, seeds, classified)
    # and none overlapping an evaluation set (decontamination) -> RUN/data.jsonl
    stages.decontaminate(ctx, "", instances, ("instruction", "input", "output"))

log = logging.getLogger(__name__)

BLOCKED_WORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
                 "draw", "plot", "go to")
CLASSIFY_HEADER = "Can the following task be regarded as a classification task with finite output labels?\n\n"
INPUT_FIRST_HEADER = ("Come up with examples for the following tasks. Try to generate multiple examples when possible. "
                      "If the task doesn't require additional input, you can generate the output directly.\n\n")
OUTPUT_FIRST_HEADER = ("Given the classification task definition and the class labels, generate an input that "
                       "corresponds to each of the class labels. If the task doesn't require input, just generate "
                       "possible class labels.\n\n")


def load_seed_tasks(path: str | Path) -> list[dict[str, Any]]:
    """Seed tasks (instruction, instances, is_classification); errors name the file and line."""
    return read_rows(path, required=("instruction", "instances", "is_classification"))


def encode_prompt(instructions: list[str]) -> str:
    """The bootstrap prompt: a numbered list, the next number left open.

    >>> print(encode_prompt(["Say hi:", "Add  two numbers."]))
    Come up with a series of tasks:
    1. Say hi
    2. Add two numbers.
    3.
    """
    lines = [f"{i}. {' '.join(t.split()).rstrip(':')}" for i, t in enumerate(instructions, 1)]
    return "Come up with a series of tasks:\n" + "\n".join(lines) + f"\n{len(instructions) + 1}."


_ITEM = re.compile(r"(?:^|\n)\s*\d+\s?[.)](?:\s+|$)")


def parse_instructions(completion: str, continues_list: bool = True) -> list[str]:
    """The instructions in a completion: the continuation of the open item (when the
    completion continues the prompt's list), then each numbered item.

    >>> parse_instructions(" Name a fruit.\\n10. Sort these words: b, a.\\n11 . Odd one")
    ['Name a fruit.', 'Sort these words: b, a.', 'Odd one']
    >>> parse_instructions("Sure! Here are more:\\n1. Name a fruit.", continues_list=False)
    ['Name a fruit.']
    """
    parts = _ITEM.split(completion)
    if not continues_list:
        parts = parts[1:]
    return [" ".join(p.split()) for p in parts if p.strip()]


def instruction_rejection(text: str, min_words: int = 4, max_words: int = 150) -> str | None:
    """Why Self-Instruct's heuristics drop an instruction, or None.

    >>> instruction_rejection("Draw a map of your town.")
    'keyword'
    >>> instruction_rejection("Explain why the sky is blue.") is None
    True
    """
    words = len(text.split())
    if words < min_words or words > max_words:
        return "length"
    if any(re.search(rf"\b{w}\b", text, re.I) for w in BLOCKED_WORDS):
        return "keyword"
    if text.startswith("Write a program"):
        return "program"
    if text[0] in string.punctuation:
        return "punctuation"
    if not text[0].isascii():
        return "non-ascii"
    return None


def classify_prompt(examples: list[dict[str, Any]], instruction: str) -> str:
    shots = "".join(f"Task: {e['instruction'].strip()}\nIs it classification? {'Yes' if e['is_classification'] else 'No'}\n\n"
                    for e in examples)
    return CLASSIFY_HEADER + shots + f"Task: {instruction.strip()}\nIs it classification?"


def parse_yes_no(text: str) -> bool | None:
    """The teacher's answer to "Is it classification?".

    >>> parse_yes_no(" Yes, it has two labels"), parse_yes_no("no"), parse_yes_no("maybe")
    (True, False, None)
    """
    m = re.match(r"\W*(yes|no)\b", text, re.I)
    return None if not m else m.group(1).lower() == "yes"


def instance_prompt(examples: list[dict[str, Any]], instruction: str, classification: bool) -> str:
    """Output-first for classification (label, then input), input-first for the rest."""
    blocks = []
    for e in examples:
        inst = e["instances"][0]
        if classification:
            blocks.append(f"Task: {e['instruction'].strip()}\nClass label: {inst['output'].strip()}\nInput: {inst['input'].strip()}")
        else:
            body = f"Input: {inst['input'].strip()}\n" if inst["input"].strip() else ""
            blocks.append(f"Task: {e['instruction'].strip()}\nExample 1\n{body}Output: {inst['output'].strip()}")
    header = OUTPUT_FIRST_HEADER if classification else INPUT_FIRST_HEADER
    opening = "\nClass label:" if classification else "\nExample 1\n"
    return header + "\n\n".join(blocks) + f"\n\nTask: {instruction.strip()}{opening}"


def parse_instances(text: str, classification: bool) -> list[dict[str, str]]:
    """Instances from a completion of `instance_prompt` (which ends where the first begins).

    >>> parse_instances(" Positive\\nInput: I loved it.\\nClass label: Negative\\nInput: Awful.", True)
    [{'input': 'I loved it.', 'output': 'Positive'}, {'input': 'Awful.', 'output': 'Negative'}]
    >>> parse_instances("Input: 2+2\\nOutput: 4\\nExample 2\\nOutput: 5", False)
    [{'input': '2+2', 'output': '4'}, {'input': '', 'output': '5'}]
    """
    text = text.split("\nTask:")[0]
    out = []
    if classification:
        for block in re.split(r"\n?Class label:", "Class label:" + text if not text.lstrip().startswith("Class label:") else text):
            if not block.strip():
                continue
            label, _, rest = block.partition("\nInput:")
            out.append({"input": rest.strip(), "output": label.strip()})
        return out
    for block in re.split(r"\n?Example \d+\s*\n", "\n" + text):
        if not block.strip():
            continue
        if "Output:" in block:
            head, _, output = block.partition("Output:")
            inp = head.split("Input:", 1)[1] if "Input:" in head else ""
        else:
            inp, output = "", block
        out.append({"input": inp.strip(), "output": output.strip()})
    return out


def filter_instances(instances: list[dict[str, str]]) -> tuple[list[dict[str, str]], Counter]:
    """Drop empty outputs, outputs equal to their input, duplicates, and inputs given
    different outputs (all of those)."""
    rejected: Counter = Counter()
    outputs_by_input: dict[str, set[str]] = {}
    for i in instances:
        outputs_by_input.setdefault(i["input"], set()).add(i["output"])
    kept, seen = [], set()
    for i in instances:
        key = (i["input"], i["output"])
        reason = ("empty output" if not i["output"] else "output = input" if i["output"] == i["input"]
                  else "duplicate" if key in seen else "conflicting outputs" if len(outputs_by_input[i["input"]]) > 1 else None)
        if reason:
            rejected[reason] += 1
            continue
        seen.add(key)
        kept.append(i)
    return kept, rejected


def bootstrap(ctx: stages.RunContext, teacher: Sampler, seeds: list[dict[str, Any]]) -> stages.Artifact:
    """New instructions -> RUN/instructions.jsonl."""
    sec = ctx.cfg.self_instruct
    fp = fingerprint([t["instruction"] for t in seeds], sec.model_dump(), ctx.cfg.seed)
    ctx.stage("instructions", fp, lambda: bootstrap_instructions(ctx.cfg, ctx.run, teacher, seeds))
    return stages.Artifact(ctx.path("instructions.jsonl"), fp)


def bootstrap_instructions(cfg: SelfInstructConfig, run: RunDir, teacher: Sampler, seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of requests until enough instructions are kept; each finished round is saved
    (`bootstrap/round-NNNN.json`), so a killed run resumes at the next round."""
    sc = cfg.self_instruct
    human = [t["instruction"] for t in seeds]
    novelty = NoveltyFilter(human, sc.novelty_threshold)
    kept: list[dict[str, Any]] = []
    counts: Counter = Counter()
    failed: list[dict[str, Any]] = []
    params = SamplingParams(temperature=sc.temperature, top_p=sc.top_p, max_new_tokens=sc.max_new_tokens)
    continues = not sc.teacher.chat
    rounds = 0
    for r in range(sc.max_rounds):
        if len(kept) >= sc.num_instructions:
            break
        rounds += 1
        path = run.path("bootstrap", f"round-{r:04d}.json")
        if path.exists():  # done before a restart: replay its result into the pool
            saved = json.loads(path.read_text())
        else:
            rng = random.Random(derive_seed(cfg.seed, "self-instruct", r))
            machine = [k["instruction"] for k in kept]
            prompts = []
            for _ in range(sc.requests_per_round):
                shown = rng.sample(machine, min(sc.machine_shots, len(machine)))
                shown += rng.sample(human, sc.shots - len(shown))
                rng.shuffle(shown)
                prompts.append(encode_prompt(shown))
            results = generate_or_fail(teacher, prompts, params, derive_seed(cfg.seed, "self-instruct-teacher", r))
            saved = {"round": r, "completions": [None if isinstance(x, Failed) else x for x in results],
                     "failed": [{"request": f"r{r}-{i}", "error": x.error, "attempts": x.attempts}
                                for i, x in enumerate(results) if isinstance(x, Failed)]}
            atomic_write_text(path, json.dumps(saved))
        failed += saved["failed"]
        for i, completion in enumerate(saved["completions"]):
            if completion is None:
                continue
            for text in parse_instructions(completion, continues):
                counts["parsed"] += 1
                reason = instruction_rejection(text, sc.min_words, sc.max_words)
                if reason is None:
                    score, similar = novelty.most_similar(text)
                    if similar is not None:
                        reason = "near-duplicate"
                    else:
                        novelty.add(text)
                if reason:
                    counts[reason] += 1
                    continue
                if len(kept) < sc.num_instructions:
                    kept.append({"instruction": text, "round": r, "request": f"r{r}-{i}"})
        log.info("round %d: %d instructions kept of %d wanted", r, len(kept), sc.num_instructions)
    write_jsonl(run.path("instructions.jsonl"), kept)
    return {"kept": len(kept), "rounds": rounds, "requests_failed": len(failed),
            "filtered": dict(counts), "failed": failed}


def classify(ctx: stages.RunContext, teacher: Sampler, seeds: list[dict[str, Any]], instructions: stages.Artifact) -> stages.Artifact:
    """Each instruction: a classification task or not, asked few-shot -> RUN/classified.jsonl."""
    sec, out = ctx.cfg.self_instruct, ctx.path("classified.jsonl")

    def work() -> dict[str, Any]:
        rows = read_jsonl(instructions.path)
        rng = random.Random(ctx.seed("classify"))
        clf = [t for t in seeds if t["is_classification"]]
        other = [t for t in seeds if not t["is_classification"]]
        half = sec.classify_shots // 2
        prompts = []
        for row in rows:
            shots = rng.sample(clf, min(half, len(clf))) + rng.sample(other, sec.classify_shots - min(half, len(clf)))
            rng.shuffle(shots)
            prompts.append(classify_prompt(shots, row["instruction"]))
        answers = generate_or_fail(teacher, prompts, SamplingParams(temperature=0.0, max_new_tokens=4), ctx.cfg.seed)
        out_rows, unread = [], 0
        for row, a in zip(rows, answers):
            verdict = None if isinstance(a, Failed) else parse_yes_no(a)
            unread += verdict is None
            out_rows.append({**row, "is_classification": bool(verdict), "classification_read": verdict is not None})
        write_jsonl(out, out_rows)
        return {"classification": sum(r["is_classification"] for r in out_rows), "unread": unread}

    fp = fingerprint(instructions.fp, sec.classify_shots)
    ctx.stage("classify", fp, work)
    return stages.Artifact(out, fp)


def make_instances(ctx: stages.RunContext, teacher: Sampler, seeds: list[dict[str, Any]], classified: stages.Artifact) -> stages.Artifact:
    """Instances for each instruction, filtered -> RUN/instances.jsonl, one row per instance with lineage."""
    sec, out = ctx.cfg.self_instruct, ctx.path("instances.jsonl")

    def work() -> dict[str, Any]:
        tasks = read_jsonl(classified.path)
        rng = random.Random(ctx.seed("instances"))
        by_kind = {k: [t for t in seeds if t["is_classification"] == k and t["instances"]] for k in (True, False)}
        prompts = [instance_prompt(rng.sample(by_kind[row["is_classification"]], sec.instance_shots),
                                   row["instruction"], row["is_classification"]) for row in tasks]
        params = SamplingParams(temperature=0.0, max_new_tokens=sec.instance_max_new_tokens)
        answers = generate_or_fail(teacher, prompts, params, ctx.cfg.seed)
        rows, rejected, failed = [], Counter(), 0
        for row, a in zip(tasks, answers):
            if isinstance(a, Failed):
                failed += 1
                continue
            kept, why = filter_instances(parse_instances(a, row["is_classification"])[: sec.instances_per_task])
            rejected.update(why)
            for n, inst in enumerate(kept):
                rows.append({
                    "instruction": row["instruction"], "input": inst["input"], "output": inst["output"],
                    "is_classification": row["is_classification"],
                    "lineage": {"method": "self-instruct", "iteration": row["round"], "model": sec.teacher.model,
                                "prompt_id": row["request"], "instance": n, "score": None},
                })
        write_jsonl(out, rows)
        return {"rows": len(rows), "tasks_with_rows": len({r["instruction"] for r in rows}),
                "rejected": dict(rejected), "requests_failed": failed}

    fp = fingerprint(classified.fp, sec.instances_per_task, sec.instance_shots, sec.instance_max_new_tokens)
    ctx.stage("instances", fp, work)
    return stages.Artifact(out, fp)


def collect(run: RunDir, cfg: SelfInstructConfig) -> dict[str, Any]:
    boot, clf, inst = (run.record(n) for n in ("instructions", "classify", "instances"))
    data = read_jsonl(run.path("data.jsonl")) if run.path("data.jsonl").exists() else []
    api = {}
    if run.path("api-cache.sqlite").exists():
        from selftrain.samplers.openai import ResponseCache

        api["cached_answers"] = len(ResponseCache(run.path("api-cache.sqlite")))
    failed_file = run.path("failed-requests.jsonl")
    return {
        "method": "self-instruct", "name": cfg.name, "seed": cfg.seed, "teacher": cfg.self_instruct.teacher.model,
        "instructions": boot.info if boot else {}, "classify": clf.info if clf else {},
        "instances": inst.info if inst else {}, "rows": len(data),
        "seconds": {n: r.seconds for n, r in (("instructions", boot), ("classify", clf), ("instances", inst)) if r},
        "failed_requests": len(failed_file.read_text().splitlines()) if failed_file.exists() else 0,
        "examples": data[:5], **api,
    }


def render(metrics: dict[str, Any]) -> str:
    boot = metrics["instructions"]
    rows = [("teacher", metrics["teacher"]), ("instructions kept", boot.get("kept")), ("rounds", boot.get("rounds")),
            ("instructions parsed", boot.get("filtered", {}).get("parsed")),
            *[(f"dropped: {k}", v) for k, v in boot.get("filtered", {}).items() if k != "parsed"],
            ("classification tasks", metrics["classify"].get("classification")),
            ("instances kept (rows)", metrics["rows"]),
            *[(f"instances dropped: {k}", v) for k, v in metrics["instances"].get("rejected", {}).items()],
            ("requests failed after every retry", metrics["failed_requests"])]
    table = kv_table(rows)
    examples = "".join(f"<li><b>{escape(e['instruction'])}</b><br>input: {escape(e['input'][:300])}<br>"
                       f"output: {escape(e['output'][:300])}</li>" for e in metrics["examples"])
    return page(f"selftrain: {escape(metrics['name'])} (seed {metrics['seed']})",
                 f"<p>Self-Instruct: what the teacher wrote, and what each filter dropped.</p>{table}"
                 f"<h2>First rows of data.jsonl</h2><ol>{examples}</ol>")


def summary(metrics: dict[str, Any]) -> list[str]:
    return [f"instructions kept {metrics['instructions'].get('kept')}, rows {metrics['rows']}, "
            f"failed requests {metrics['failed_requests']}"]


MOVED = {"teacher": "self_instruct.teacher"}

METHOD = Method("self-instruct", SelfInstructConfig, run, collect, render, summary,
                needs=lambda cfg: [("self_instruct.teacher", cfg.self_instruct.teacher, set())], moved=MOVED)
