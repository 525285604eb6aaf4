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
           (`selftrain.data.novelty`: exactly rouge-score's verdicts, pruned by token overlap)
    4. classification or not: the teacher answers "Is it classification?" few-shot
    5. instances: output-first for classification tasks (a class label, then an input for
       it), input-first for the others (an input, then its output)
    6. instances filtered: empty output, output equal to its input, exact duplicates, and
       the same input with different outputs are dropped

Run it:  `selftrain run configs/self-instruct.yaml`  (the teacher is any local model or
OpenAI-compatible endpoint, `self_instruct.teacher`).

Writes `RUN/data.jsonl`: one row per instance (instruction, input, output,
is_classification) with its lineage (method, round, teacher model, request id), which
`datasets.load_dataset("json", data_files=...)` loads; each round's requests and answers
(`RUN/bootstrap/round-NN.jsonl`) and the instructions it added (`round-NN-kept.jsonl`,
the dropped ones with their reason beside it); a request an API teacher failed after every
retry stays in its stage's file with its error, and is counted in the report.

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
- Classification is asked greedily with 4 new tokens, instances greedily.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from selftrain import stages
from selftrain.artifacts import RunDir, derive_seed, read_jsonl, read_rows
from selftrain.config import RunBase, Sampling, TeacherConfig, _Section
from selftrain.data import SELF_INSTRUCT_SEED_TASKS
from selftrain.data.novelty import NoveltyFilter
from selftrain.methods import Method
from selftrain.records import SamplingParams
from selftrain.report import escape, kv_table, page


class InstructionFilter(_Section):
    """Steps 2-3: what a new instruction must pass."""

    min_words: int = Field(4, ge=1)
    """Shorter instructions are dropped."""
    max_words: int = Field(150, ge=1)
    """Longer instructions are dropped."""
    novelty_threshold: float = Field(0.7, gt=0.0, le=1.0)
    """Kept only if its ROUGE-L to every instruction in the pool is below this."""


class InstanceWriting(Sampling):
    """Steps 5-6: the instances written for each instruction (greedy by default)."""

    temperature: float = Field(0.0, ge=0.0)
    """0: greedy instances."""
    max_new_tokens: int = Field(256, ge=1)
    """The longest answer with its instances, in tokens."""
    per_task: int = Field(3, ge=1)
    """At most this many instances kept per instruction."""
    shots: int = Field(3, ge=1)
    """Seed tasks of the same kind shown per request."""


class SelfInstructSection(_Section):
    """Self-Instruct (Wang et al. 2022): the teacher bootstraps instructions from a seed pool."""

    teacher: TeacherConfig = TeacherConfig()
    """The model that writes the instructions and instances."""
    seed_tasks: str | None = None
    """JSON lines of seed tasks (instruction, instances, is_classification); None: the 175 of
    the paper, shipped with selftrain (`selftrain.data.SELF_INSTRUCT_SEED_TASKS`)."""
    num_instructions: int = Field(100, ge=1)
    """New instructions to keep (the paper: 52K)."""
    requests_per_round: int = Field(8, ge=1)
    """Requests to the teacher per round."""
    max_rounds: int = Field(50, ge=1)
    """Stop after this many rounds even with fewer instructions kept."""
    shots: int = Field(8, ge=2)
    """In-context instructions per request (the paper: 8)."""
    machine_shots: int = Field(2, ge=0)
    """Of the `shots` in-context instructions, how many come from those generated so far."""
    bootstrap: Sampling = Sampling(temperature=0.7, top_p=0.5, max_new_tokens=256)
    """Step 1: how the teacher continues the list."""
    filter: InstructionFilter = InstructionFilter()
    """Steps 2-3."""
    classify_shots: int = Field(12, ge=2)
    """Step 4: seed tasks shown (half classification, half not)."""
    instances: InstanceWriting = InstanceWriting()
    """Steps 5-6."""


class SelfInstructConfig(RunBase):
    name: str = "self-instruct"
    method: Literal["self-instruct"] = "self-instruct"
    self_instruct: SelfInstructSection = SelfInstructSection()


def run(ctx: stages.RunContext[SelfInstructConfig]) -> None:
    """Self-Instruct, steps numbered as in the docstring."""
    sec = ctx.cfg.self_instruct
    seeds = load_seed_tasks(sec.seed_tasks or SELF_INSTRUCT_SEED_TASKS)
    human = [t["instruction"] for t in seeds]
    kept: list[dict[str, Any]] = []
    for r in range(sec.max_rounds):
        if len(kept) >= sec.num_instructions:
            break
        # step 1: 8 in-context instructions per request (6 human, 2 made so far), numbered; the teacher continues
        requests = bootstrap_requests(r, human, [k["instruction"] for k in kept], sec, ctx.cfg.seed)
        answers = stages.ask(ctx, "bootstrap", f"round-{r:02d}", sec.teacher, requests, sec.bootstrap.params(),
                             derive_seed(ctx.cfg.seed, "self-instruct-teacher", r))
        # steps 2-3: the heuristics, then ROUGE-L novelty against the pool so far
        new = stages.filter_rows(ctx, "bootstrap", f"round-{r:02d}-kept", [answers], new_instructions, {
            "pool": human + [k["instruction"] for k in kept], "round": r, "wanted": sec.num_instructions - len(kept),
            "continues_list": not sec.teacher.chat, **sec.filter.model_dump()})
        kept += read_jsonl(new.path)
    # step 4: classification or not, asked few-shot
    asked = stages.ask(ctx, "", "classify", sec.teacher, classify_requests(kept, seeds, sec.classify_shots, ctx.seed("classify")),
                       SamplingParams(temperature=0.0, max_new_tokens=4), ctx.cfg.seed)
    # step 5: instances, output-first for classification tasks, input-first for the others
    tasks = [{**row, "is_classification": bool(parse_yes_no(row.get("completion", "")))} for row in read_jsonl(asked.path)]
    written = stages.ask(ctx, "", "instances", sec.teacher, instance_requests(tasks, seeds, sec.instances.shots, ctx.seed("instances")),
                         sec.instances.params(), ctx.cfg.seed)
    # step 6: instances filtered, one row each with its lineage; then none overlapping an evaluation set -> RUN/data.jsonl
    rows = stages.filter_rows(ctx, "", "instances-kept", [written], instance_rows,
                              {"per_task": sec.instances.per_task, "teacher": sec.teacher.model})
    stages.decontaminate(ctx, "", rows, ("instruction", "input", "output"))


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


def bootstrap_requests(r: int, human: list[str], machine: list[str], sec: SelfInstructSection, seed: int) -> list[dict[str, Any]]:
    """Round `r`'s requests: `shots` instructions each, `machine_shots` of them from those
    generated so far (none at first), shuffled and numbered."""
    rng = random.Random(derive_seed(seed, "self-instruct", r))
    out = []
    for i in range(sec.requests_per_round):
        shown = rng.sample(machine, min(sec.machine_shots, len(machine)))
        shown += rng.sample(human, sec.shots - len(shown))
        rng.shuffle(shown)
        out.append({"prompt": encode_prompt(shown), "request": f"r{r}-{i}"})
    return out


def new_instructions(answers: list[dict[str, Any]], pool: list[str], round: int, wanted: int, continues_list: bool,
                     min_words: int, max_words: int, novelty_threshold: float) -> stages.Filtered:
    """Steps 2-3 over one round's answers: each parsed instruction passes the heuristics and is
    kept only if its ROUGE-L to every instruction of the pool (and every one kept before it)
    is below the threshold; at most `wanted` are kept."""
    novelty = NoveltyFilter(pool, novelty_threshold)
    kept, rejected, counts = [], [], Counter()
    for answer in answers:
        if "completion" not in answer:
            continue
        for text in parse_instructions(answer["completion"], continues_list):
            counts["parsed"] += 1
            reason = instruction_rejection(text, min_words, max_words)
            if reason is None:
                score, similar = novelty.most_similar(text)
                if similar is not None:
                    reason = "near-duplicate"
                else:
                    novelty.add(text)
            if reason:
                counts[reason] += 1
                rejected.append({"instruction": text, "request": answer["request"], "reason": reason})
            elif len(kept) < wanted:
                kept.append({"instruction": text, "round": round, "request": answer["request"]})
    return stages.Filtered(kept, rejected, {"parsed": counts.pop("parsed", 0), "filtered": dict(counts)})


def classify_requests(kept: list[dict[str, Any]], seeds: list[dict[str, Any]], shots: int, seed: int) -> list[dict[str, Any]]:
    """Step 4's requests: `shots` seed tasks shown, half of them classification tasks."""
    rng = random.Random(seed)
    clf = [t for t in seeds if t["is_classification"]]
    other = [t for t in seeds if not t["is_classification"]]
    half = shots // 2
    out = []
    for row in kept:
        shown = rng.sample(clf, min(half, len(clf))) + rng.sample(other, shots - min(half, len(clf)))
        rng.shuffle(shown)
        out.append({**row, "prompt": classify_prompt(shown, row["instruction"])})
    return out


def instance_requests(tasks: list[dict[str, Any]], seeds: list[dict[str, Any]], shots: int, seed: int) -> list[dict[str, Any]]:
    """Step 5's requests: seed tasks of the same kind shown, output-first for classification."""
    rng = random.Random(seed)
    by_kind = {k: [t for t in seeds if t["is_classification"] == k and t["instances"]] for k in (True, False)}
    return [{"instruction": t["instruction"], "round": t["round"], "request": t["request"],
             "is_classification": t["is_classification"],
             "prompt": instance_prompt(rng.sample(by_kind[t["is_classification"]], shots), t["instruction"], t["is_classification"])}
            for t in tasks]


def instance_rows(written: list[dict[str, Any]], per_task: int, teacher: str) -> stages.Filtered:
    """Step 6: each answer's instances parsed and filtered, one row per instance with lineage."""
    rows, counts, failed = [], Counter(), 0
    for task in written:
        if "completion" not in task:
            failed += 1
            continue
        kept, why = filter_instances(parse_instances(task["completion"], task["is_classification"])[:per_task])
        counts.update(why)
        for n, inst in enumerate(kept):
            rows.append({
                "instruction": task["instruction"], "input": inst["input"], "output": inst["output"],
                "is_classification": task["is_classification"],
                "lineage": {"method": "self-instruct", "iteration": task["round"], "model": teacher,
                            "prompt_id": task["request"], "instance": n, "score": None},
            })
    return stages.Filtered(rows, [], {"tasks_with_rows": len({r["instruction"] for r in rows}), "rejected": dict(counts),
                                      "requests_failed": failed})


# --- report ---------------------------------------------------------------------------


def collect(run: RunDir, cfg: SelfInstructConfig) -> dict[str, Any]:
    sec = cfg.self_instruct
    rounds = [(run.record(f"bootstrap/round-{r:02d}"), run.record(f"bootstrap/round-{r:02d}-kept"))
              for r in range(sec.max_rounds)]
    rounds = [(a, k) for a, k in rounds if a is not None and k is not None]
    filtered: Counter = Counter()
    for _, k in rounds:
        filtered.update(k.info.get("filtered", {}))
    asks = [rec for rec in [a for a, _ in rounds] + [run.record("classify"), run.record("instances")] if rec is not None]
    clf, inst = run.record("classify"), run.record("instances-kept")
    classified = stages.asked(run, "", "classify") or []
    data = stages.training_data(run) or []
    boot = {"kept": sum(k.info["kept"] for _, k in rounds), "rounds": len(rounds),
            "filtered": {"parsed": sum(k.info.get("parsed", 0) for _, k in rounds), **dict(filtered)}}
    return {
        "method": "self-instruct", "name": cfg.name, "seed": cfg.seed, "teacher": sec.teacher.model,
        "instructions": boot,
        "classify": {"classification": sum(bool(parse_yes_no(r.get("completion", ""))) for r in classified),
                     "unread": sum(parse_yes_no(r.get("completion", "")) is None for r in classified)} if clf else {},
        "instances": inst.info if inst else {}, "rows": len(data),
        "seconds": {"instructions": round(sum(a.seconds + k.seconds for a, k in rounds), 3),
                    **{n: r.seconds for n, r in (("classify", clf), ("instances", inst)) if r}},
        "failed_requests": sum(rec.info.get("failed", 0) for rec in asks),
        "examples": data[:5],
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


METHOD = Method("self-instruct", SelfInstructConfig, run, collect, render, summary,
                needs=lambda cfg: [("self_instruct.teacher", cfg.self_instruct.teacher, set())])
