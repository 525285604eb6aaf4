"""Decontamination: planted copies of test problems (verbatim, reformatted, numbers
changed) are found, each with the test item it copies, and nothing else is flagged."""

import json
from pathlib import Path

import pytest

from selftrain import stages
from selftrain.artifacts import fingerprint, read_jsonl, write_jsonl
from selftrain.data.decontamination import EvalIndex, EvalItem, words
from selftrain.methods import parse_config

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason=f"{DATA} is absent")


def plant(question: str, how: str) -> str:
    if how == "verbatim":
        return question
    if how == "reformatted":  # case, spacing, punctuation and line breaks changed, wrapped in a prompt
        return "Problem:\n" + question.upper().replace(",", " ;").replace(". ", ".\n\n") + "\nThink step by step!"
    # numbers changed
    return " ".join(str(int(w) + 7) if w.isdigit() else w for w in question.split())


def test_short_items_match_whole_and_numbers_count_there():
    index = EvalIndex([EvalItem("test", "t1", "0347+0085="), EvalItem("test", "t2", "What is 2+3?")], n=13)
    assert index.match("0347+0085=").item.id == "t1"
    assert index.match("solve: 0347 + 0085 = ?").item.id == "t1"
    assert index.match("0347+0086=") is None and index.match("7+5+0=12 4+8+1=13 A:432") is None
    assert index.match("what is 2 + 3").item.id == "t2" and index.match("What is 2+4?") is None
    assert words("Ünïcode, TEXT!") == ["ünïcode", "text"]


@needs_data
def test_a_shared_prompt_template_is_not_contamination():
    template = ("Question: Lena has 45 shells and gets 17 more shells. How many shells does Lena have now?\n"
                "Answer: 45 + 17 = 62. The answer is 62.\n\nQuestion: {q}\nAnswer:")
    tests = ["What is the capital of the country north of Spain?", "Which river runs through the middle of Cairo?",
             "How many legs do three spiders and two ants have together?", "Name a prime number larger than fifty."]
    index = EvalIndex([EvalItem("test", str(i), template.format(q=q)) for i, q in enumerate(tests)], n=8)
    assert index.match(template.format(q="Who wrote the novel about a whale and a captain at sea?")) is None
    copy = index.match(template.format(q="How many legs do three spiders and two ants have together, please?"))
    assert copy is not None and copy.item.id == "2"


def test_planted_gsm8k_copies_are_found_and_nothing_else(tmp_path):
    test = [json.loads(line)["question"] for line in (DATA / "gsm8k" / "test.jsonl").open()]
    train = [json.loads(line)["question"] for line in (DATA / "gsm8k" / "train.jsonl").open()][:500]
    planted = {}
    rows = [{"prompt": q, "completion": "#### 1"} for q in train]
    for i, how in enumerate(["verbatim", "reformatted", "numbers changed"] * 4):
        k = 97 * i + 5
        rows.insert(40 * i + 3, {"prompt": plant(test[k], how), "completion": "#### 1"})
        planted[rows[40 * i + 3]["prompt"]] = f"test-{k}"
    source = tmp_path / "rows.jsonl"
    write_jsonl(source, rows)

    cfg = parse_config({"method": "rest-em", "decontaminate": {"against": ["gsm8k"], "data": str(DATA)}})
    with stages.open_run(cfg, tmp_path / "run") as ctx:
        clean = stages.decontaminate(ctx, "g", stages.Rows(fingerprint("rows"), lambda: rows, source), ("prompt", "completion"))
        found = read_jsonl(tmp_path / "run" / "g" / "contaminated.jsonl")
        assert len(clean.load()) == 498
    flagged = {r["row"]["prompt"]: r["test_item"]["id"] for r in found}
    assert {q: i for q, i in flagged.items() if q in planted} == planted
    # besides the planted copies, only GSM8K's own train/test overlap: two train questions of the
    # first 500 reuse a test question's template (Bella's stamps = test 632, two movies = test 581)
    real = {q[:20]: i for q, i in flagged.items() if q not in planted}
    assert real == {"Bella bought stamps ": "test-632", "Joseph and his frien": "test-581"}
    record = json.loads((tmp_path / "run" / "g" / "decontaminate.done.json").read_text())
    assert record["info"]["contaminated"] == 14 and record["info"]["checked"] == 512


@pytest.mark.slow
def test_a_method_drops_contaminated_rows_and_says_so(tmp_path):
    """Self-Instruct through a scripted teacher whose instances copy a test problem: the
    copies are listed in contaminated.jsonl and never reach data.jsonl."""
    from fakes import ScriptedSampler
    from fakes import self_instruct_teacher as teacher  # the FAKE teacher's rule of the Self-Instruct tests

    from selftrain.data import SELF_INSTRUCT_SEED_TASKS as SEEDS
    from selftrain.runs import run_method
    from selftrain.samplers.serve import ModelServer

    leak = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
    evals = tmp_path / "evals"
    (evals / "gsm8k").mkdir(parents=True)
    (evals / "gsm8k" / "test.jsonl").write_text(json.dumps({"question": leak, "answer": "#### 72"}) + "\n")

    def leaky(prompt, seed, model):
        out = teacher(prompt, seed)
        return out.replace("Input:", f"Input: {leak.replace('48', '50')}\nInput:", 1) if "Example 1" in prompt else out

    with ModelServer(ScriptedSampler(leaky)) as server:
        cfg = parse_config({"name": "si", "method": "self-instruct",
                            "decontaminate": {"against": ["gsm8k"], "data": str(evals)},
                            "self_instruct": {"teacher": {"backend": "openai", "base_url": server.url, "model": "leaky"},
                                              "seed_tasks": str(SEEDS), "num_instructions": 6, "requests_per_round": 3}})
        run_method(cfg, tmp_path / "run")
    dirty = read_jsonl(tmp_path / "run" / "contaminated.jsonl")
    data = read_jsonl(tmp_path / "run" / "data.jsonl")
    assert dirty and data and all(leak[:20] not in json.dumps(r) for r in data)
    assert all(r["test_item"]["source"] == "gsm8k" for r in dirty)


@pytest.mark.slow
def test_rest_em_samples_no_pool_problem_that_copies_a_test_problem(tmp_path, tiny_cfg_dict):
    from selftrain.runs import run_method

    story = "A farmer has {} cows and buys {} more at the market on a sunny Monday morning. How many cows now?"
    test = [{"id": f"t{i}", "prompt": story.format(i, i + 1).replace("cows", "goats"), "answer": str(2 * i + 1)}
            for i in range(3)]
    pool = [{"id": f"p{i}", "prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(5)]
    pool.append({"id": "leak", "prompt": story.format(40, 2).replace("cows", "goats").upper(), "answer": "42"})
    for name, rows in (("test.jsonl", test), ("pool.jsonl", pool)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = {**tiny_cfg_dict, "task": {"name": "jsonl", "jsonl": {"path": str(tmp_path / "pool.jsonl"),
                                                               "test_path": str(tmp_path / "test.jsonl"), "verifier": "exact"}}}
    d["rest_em"].update(iterations=1, compute_matched_baseline=False)
    d["model"]["tiny"]["max_length"] = 192  # room for the story problems
    run_method(parse_config(d), tmp_path / "run")
    dirty = read_jsonl(tmp_path / "run" / "pool" / "contaminated.jsonl")
    assert [(r["problem"]["id"], r["test_item"]["id"]) for r in dirty] == [("leak", "t0")]
    sampled = {r["problem_id"] for r in read_jsonl(tmp_path / "run" / "iter-01" / "samples.jsonl")}
    assert sampled == {f"p{i}" for i in range(5)}
