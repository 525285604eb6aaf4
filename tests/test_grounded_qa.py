"""Grounded QA: chunking, pair parsing, the support filter, and the whole method through a
real HTTP server on localhost.

The teacher behind the server is `ScriptedSampler(rules)`, a FAKE (no model): it writes one grounded
pair, one hallucinated pair and one malformed pair per chunk, and judges a pair grounded
when the answer's sentence is in the passage. The run on a real model (SmolLM2-135M-Instruct
on this project's docs) is in docs/synthetic-data.md.
"""

from __future__ import annotations

import re

from fakes import ScriptedSampler

from selftrain.methods import parse_config
from selftrain.methods.grounded_qa import chunk_documents, parse_pairs, support
from selftrain.runs import run_method
from selftrain.samplers.serve import Faults, ModelServer

DOC_A = """# Tea guide

Intro paragraph about tea that is short.

## Green tea

Green tea is steeped at 80 degrees for two minutes. It comes from Camellia sinensis.

## Black tea

Black tea is steeped at 95 degrees for four minutes.
"""

DOC_B = "Kettles\n\nA kettle boils water in about three minutes.\n\n" + "Filler sentence number one. " * 30


def rules(prompt: str, seed: int, model: str) -> str:
    """The FAKE teacher and judge's rule (tests/fakes.py's ScriptedSampler plays it)."""
    prompt = prompt.strip()
    if prompt.startswith("Read the passage below"):
        passage = prompt.split("Passage:\n", 1)[1]
        first = re.split(r"(?<=\.)\s", passage.split("\n")[-1].strip())[0]
        return (f"1. Q: What does the passage starting with '{first[:30]}' say first?\nA: {first}\n\n"
                "2. Q: Who invented the telephone?\nA: Alexander Graham Bell invented the telephone in Boston.\n\n"
                "3. Q: Tell me something\nA: Something.")
    answer = prompt.rsplit("Answer: ", 1)[1].split("\n")[0]
    passage = prompt.split("Passage:\n", 1)[1].split("\n\nQuestion:")[0]
    return "The passage states it. Score: 1" if answer in passage else "Not in the passage. Score: 0"


def test_chunks_keep_headings_and_spans(tmp_path):
    (tmp_path / "a.md").write_text(DOC_A)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text(DOC_B)
    (tmp_path / "skip.json").write_text("{}")
    chunks = chunk_documents(tmp_path, chunk_chars=200)
    assert [c.id for c in chunks] == ["a.md#0", "a.md#1", "a.md#2", "sub/b.txt#0", "sub/b.txt#1"]
    green = chunks[1]
    assert green.headings == "Tea guide > Green tea" and green.text.startswith("Green tea is steeped")
    assert DOC_A[green.start:green.end].strip() == green.text
    assert chunks[2].headings == "Tea guide > Black tea"
    assert all(len(c.text) <= 200 or "\n" not in c.text for c in chunks)  # only a single long paragraph exceeds


def test_pairs_and_support_on_real_looking_outputs():
    text = ("Sure! Here are 3 questions:\n\n1. **Q:** What temperature is green tea steeped at?\n**A:** 80 degrees.\n\n"
            "Question 2: How long is black tea steeped?\nAnswer 2: Four minutes.\nQ: No answer here?")
    assert parse_pairs(text) == [("What temperature is green tea steeped at?", "80 degrees."),
                                 ("How long is black tea steeped?", "Four minutes.")]
    assert support("Four minutes.", DOC_A) == 1.0
    assert support("Alexander Graham Bell", DOC_A) == 0.0


def test_grounded_qa_end_to_end_through_a_faulty_endpoint(tmp_path):
    import datasets

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(DOC_A)
    (docs / "b.txt").write_text(DOC_B)
    with ModelServer(ScriptedSampler(rules), faults=Faults(rate=0.3, kinds=("500", "drop", "truncated"))) as server:
        teacher = {"backend": "openai", "base_url": server.url, "model": "rules", "max_retries": 10}
        cfg = parse_config({"name": "gqa", "method": "grounded-qa",
                            "grounded_qa": {"teacher": teacher, "documents": str(docs), "chunk_chars": 200, "pairs_per_chunk": 3}})
        metrics = run_method(cfg, tmp_path / "run")
    chunks = metrics["chunks"]
    assert chunks == 5 and metrics["rows"] == chunks  # the grounded pair of each chunk, and only it
    assert metrics["parsed"] == 3 * chunks and metrics["dropped"] == {"support": chunks, "format": chunks}
    assert metrics["judged"] == chunks and metrics["failed_requests"] == 0
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "run" / "data.jsonl"), split="train")
    for row in ds:
        assert row["answer"] in row["chunk"] and row["lineage"]["score"] == 1.0
        assert row["source"]["chunk_id"].startswith(row["source"]["path"])
    rejected = [r for r in datasets.load_dataset("json", data_files=str(tmp_path / "run" / "candidates.rejected.jsonl"), split="train")]
    assert {(r["question"], r["reason"].split(" ")[0]) for r in rejected} == {
        ("Who invented the telephone?", "support"), ("Tell me something", "format")}
