"""Dedupe: exact and near duplicates removed, the first of each cluster kept, deterministically."""

import json
import random
import subprocess
import sys

from selftrain.data import SELF_INSTRUCT_SEED_TASKS
from selftrain.data.dedupe import find_duplicates, shingles

FIXTURE = SELF_INSTRUCT_SEED_TASKS


def _edit(text: str, rng: random.Random) -> str:
    """A near-duplicate: one word of a long text dropped (Jaccard of 3-grams stays high)."""
    words = text.split()
    del words[rng.choice([i for i, w in enumerate(words) if any(c.isalpha() for c in w)])]
    return " ".join(words)


def test_planted_duplicates_are_found_and_the_first_is_kept():
    seeds = [json.loads(line) for line in FIXTURE.open()]
    texts = [f"{s['instruction']} {s['instances'][0]['input']} {s['instances'][0]['output']}" for s in seeds]
    texts = [t for t in texts if len(t.split()) >= 40]
    rng = random.Random(0)
    rows, planted = list(texts), {}
    for k in range(0, len(texts), 3):
        rows.append(texts[k].upper().replace(" ", "  "))  # exact after normalisation
        planted[len(rows) - 1] = (k, "exact")
        rows.append(_edit(texts[k], rng))
        planted[len(rows) - 1] = (k, "near")
    found = {d.index: (d.of, d.kind) for d in find_duplicates(rows, threshold=0.8)}
    assert found == planted
    again = {d.index: (d.of, d.kind) for d in find_duplicates(rows, threshold=0.8)}
    assert again == found  # deterministic


def test_short_texts_and_distinct_texts_are_left_alone():
    rows = ["Add 2 and 3.", "Add 2 and 4.", "Name a color.", "Name a colour."]
    assert find_duplicates(rows) == []
    assert shingles("one two") == {b"one two"}


def test_dedupe_command_writes_kept_rows_and_the_duplicates(tmp_path):
    data = tmp_path / "pool.jsonl"
    rows = [{"text": "The quick brown fox jumps over the lazy dog near the river bank today.", "id": 1},
            {"text": "the quick brown fox jumps over the lazy dog, near the river bank today", "id": 2},
            {"text": "A completely different sentence about the weather in spring.", "id": 3}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run([sys.executable, "-m", "selftrain", "dedupe", str(data), "--field", "text"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "3 rows: kept 2, removed 1 exact and 0 near" in proc.stdout
    kept = [json.loads(line)["id"] for line in (tmp_path / "pool.dedup.jsonl").open()]
    dup = [json.loads(line) for line in (tmp_path / "pool.dedup.duplicates.jsonl").open()]
    assert kept == [1, 3] and dup[0]["line"] == 2 and dup[0]["duplicate_of_line"] == 1
