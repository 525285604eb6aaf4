"""Self-Instruct: the prompt and the filters on real-looking teacher outputs, and the whole
method through the OpenAI-compatible path (a real HTTP server on localhost, faults injected).

The teacher behind the server here is `ScriptedSampler(self_instruct_teacher)`, a FAKE: it writes plausible
instructions, labels and instances by rule. A real model that writes usable instructions
(SmolLM2-135M-Instruct, the one available offline) needs minutes for a few dozen rows on
this CPU; that run is in docs/synthetic-data.md, not in CI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fakes import ScriptedSampler, self_instruct_teacher

from selftrain.data import SELF_INSTRUCT_SEED_TASKS
from selftrain.methods import parse_config
from selftrain.methods.self_instruct import (
    encode_prompt,
    filter_instances,
    instance_prompt,
    instruction_rejection,
    load_seed_tasks,
    parse_instances,
    parse_instructions,
)
from selftrain.runs import run_method
from selftrain.samplers.serve import Faults, ModelServer

SEEDS = SELF_INSTRUCT_SEED_TASKS

def test_bootstrap_prompt_and_parse_on_real_looking_outputs():
    prompt = encode_prompt([f"Task number {i}:" for i in range(8)])
    assert prompt.startswith("Come up with a series of tasks:\n1. Task number 0\n") and prompt.endswith("\n9.")
    # a completion model continues item 9; a chat model restarts the list after a preamble
    assert parse_instructions(" Give an example of a metaphor.\n10. Rewrite this sentence in passive voice.\n11.") == [
        "Give an example of a metaphor.", "Rewrite this sentence in passive voice."]
    chat = "Sure! Here are some more tasks:\n\n1. Summarize the plot of Hamlet.\n2) Translate 'hello' into Spanish."
    assert parse_instructions(chat, continues_list=False) == ["Summarize the plot of Hamlet.", "Translate 'hello' into Spanish."]
    table = {"Plot the sales figures for 2020.": "keyword", "Go to the store and buy milk.": "keyword",
             "Summarize the attached file.": "keyword", "Write a program to sort a list.": "program",
             "Say hi.": "length", "- List three fruits that are red.": "punctuation",
             "Écris un poème sur la mer.": "non-ascii", "Explain how a bill becomes a law.": None,
             "Describe the mapping between keys and values.": None}  # "mapping" is not the word "map"
    assert {t: instruction_rejection(t) for t in table} == table


def test_instance_prompts_are_output_first_for_classification():
    seeds = load_seed_tasks(SEEDS)
    clf = [s for s in seeds if s["is_classification"]][:2]
    gen = [s for s in seeds if not s["is_classification"]][:2]
    p = instance_prompt(clf, "Is this email spam?", classification=True)
    assert p.startswith("Given the classification task definition and the class labels") and p.endswith("Task: Is this email spam?\nClass label:")
    assert p.index("Class label:") < p.index("Input:")
    p = instance_prompt(gen, "Write a haiku about rain.", classification=False)
    assert p.startswith("Come up with examples for the following tasks") and p.endswith("Example 1\n")
    kept, rejected = filter_instances(parse_instances(
        "Input: a\nOutput: b\nExample 2\nInput: a\nOutput: b\nExample 3\nInput: c\nOutput: c\nExample 4\nInput: d\n"
        "Output: \nExample 5\nInput: e\nOutput: 1\nExample 6\nInput: e\nOutput: 2", classification=False))
    assert kept == [{"input": "a", "output": "b"}]
    assert rejected == {"duplicate": 1, "output = input": 1, "empty output": 1, "conflicting outputs": 2}


def _cfg(url: str, tmp: Path, **si):
    return parse_config({
        "name": "si-test", "method": "self-instruct",
        "self_instruct": {"teacher": {"backend": "openai", "base_url": url, "model": "scripted", "timeout": 2, "max_retries": 8},
                          "seed_tasks": str(SEEDS), "num_instructions": 12, "requests_per_round": 3, "max_rounds": 10,
                          **si},
    })


def test_self_instruct_end_to_end_through_a_faulty_endpoint(tmp_path, monkeypatch):
    import datasets
    from rouge_score import rouge_scorer

    out = tmp_path / "run"
    faults = Faults(rate=0.25, kinds=("429", "500", "truncated", "drop"), retry_after=0.05)
    with ModelServer(ScriptedSampler(self_instruct_teacher), faults=faults) as server:
        metrics = run_method(_cfg(server.url, tmp_path), out)
        bodies = [b for _, b in server.arrivals]
    boot = metrics["instructions"]
    assert boot["kept"] == 12 and metrics["failed_requests"] == 0
    assert boot["filtered"]["keyword"] >= 1 and boot["filtered"]["program"] >= 1 and boot["filtered"]["length"] >= 1
    assert boot["filtered"]["near-duplicate"] >= 1  # the fake repeats its forms: ROUGE-L catches it

    kept = [json.loads(x)["instruction"] for f in sorted((out / "bootstrap").glob("round-*-kept.jsonl"))
            for x in f.read_text().splitlines()]
    assert len(kept) == 12 and boot["rounds"] == len(list((out / "bootstrap").glob("round-??.jsonl")))
    seeds = [s["instruction"] for s in load_seed_tasks(SEEDS)]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for i, a in enumerate(kept):  # the brute-force check: < 0.7 to every seed and every earlier one
        assert all(scorer.score(b, a)["rougeL"].fmeasure < 0.7 for b in seeds + kept[:i])

    # in-context instructions: 8 per request, 2 of them machine-made once there are any
    boots = [b["messages"][-1]["content"] for b in bodies if b["messages"][-1]["content"].startswith("Come up with a series")]
    shown = [re.findall(r"^\d+\. (.*)$", p, re.M) for p in boots]
    assert all(len(s) == 8 for s in shown)
    machine_counts = [sum(x not in {" ".join(t.split()).rstrip(":") for t in seeds} for x in s) for s in shown]
    assert machine_counts[0] == 0 and max(machine_counts) == 2 and set(machine_counts) <= {0, 2}

    ds = datasets.load_dataset("json", data_files=str(out / "data.jsonl"), split="train")
    assert len(ds) == metrics["rows"] > 0
    assert set(ds.column_names) >= {"instruction", "input", "output", "is_classification", "lineage"}
    assert {r["lineage"]["method"] for r in ds} == {"self-instruct"} and all(r["lineage"]["model"] == "scripted" for r in ds)
    clf_rows = [r for r in ds if r["is_classification"]]
    assert all(r["output"] in ("Positive", "Negative") and r["input"] for r in clf_rows)
    assert (out / "report.html").read_text().count("instructions kept") == 1
    # what the data looks like: the first words of the instructions, the rows per source
    shape = metrics["data"]["."]
    assert shape["rows"] == metrics["rows"] and sum(shape["sources"].values()) == metrics["rows"]
    assert shape["first_words"] and set(shape["first_words"]) <= {i.split()[0].lower().strip(".,:;!?\"'") for i in kept}
    assert "most common first words" in (out / "report.html").read_text()
    card = (out / "README.md").read_text()
    assert "**Written by:** scripted" in card and "Self-Instruct seed tasks" in card

    # a rerun skips every stage and sends nothing
    with ModelServer(ScriptedSampler(self_instruct_teacher)) as server:
        again = run_method(_cfg(server.url, tmp_path), out)
        assert server.arrivals == []
    assert again["rows"] == metrics["rows"]
