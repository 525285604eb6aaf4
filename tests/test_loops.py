"""Fast specifications of every method's loop, in-process: the shared FAKE sampler
(`tests/fakes.py`, the `scripted` backend) plays every checkpoint, a real tiny model is
trained for a step or two at each training stage, and each test asserts on the stage
records: which model each stage started from or sampled, which rows each training stage
got, which problems each E-step sampled."""

from __future__ import annotations

import json
import shutil
from functools import partial

import pytest
from fakes import arithmetic, chat, scripted_backend

from selftrain import stages
from selftrain.artifacts import RunDir, read_jsonl
from selftrain.methods import parse_config
from selftrain.runs import run_method

TRAIN = {"steps": 2, "batch_size": 8, "logging_steps": 1, "warmup_steps": 0}
TINY = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_length": 64}


def _rest_em(**rest_em) -> dict:
    return {
        "name": "spec", "method": "rest-em",
        "task": {"arithmetic": {"human_size": 30, "pool_size": 24, "test_per_bucket": 3, "test_digits": [1, 2, 3]}},
        "model": {"tiny": TINY, "sampler": {"backend": "scripted"}},
        "rest_em": {"iterations": 2, "sft": TRAIN, "m_step": TRAIN, "e_step": {"k": 2, "max_new_tokens": 40}, **rest_em},
        "eval": {"k": 1, "max_new_tokens": 40},
    }


def _records(out) -> dict:
    run = RunDir(out)
    return {p.relative_to(out).as_posix().removesuffix(".done.json"): run.record(p.relative_to(out).as_posix().removesuffix(".done.json")).info
            for p in out.rglob("*.done.json")}


@pytest.mark.parametrize("start_from, start_of_iter_2", [("base", "sft/model"), ("previous", "iter-01/model"),
                                                          ("init", "init/model")])
def test_rest_em_trains_each_iteration_from_the_model_start_from_names(tmp_path, start_from, start_of_iter_2):
    with scripted_backend() as samplers:
        run_method(parse_config(_rest_em(start_from=start_from)), tmp_path)
    rec = _records(tmp_path)
    assert rec["sft/train"]["start"] == "init/model" and rec["sft/train"]["data"] == ["human"]
    assert rec["iter-02/train"]["start"] == start_of_iter_2
    # every E-step samples the current policy, whatever the M-step starts from
    assert rec["iter-01/generate"]["model"] == "sft/model" and rec["iter-02/generate"]["model"] == "iter-01/model"
    # the M-step trains on the kept samples alone (the paper), as decontaminated
    assert rec["iter-02/train"]["data"] == ["iter-02/data.jsonl"]
    assert rec["iter-02/train"]["examples"] == len(read_jsonl(tmp_path / "iter-02" / "data.jsonl")) > 0
    assert rec["compute-matched/train"]["start"] == "sft/model" and rec["compute-matched/train"]["steps"] == 2 * 2
    # evaluation sampled each model once greedily (and k=1 more), every checkpoint in its turn
    assert [s.model for s in samplers].count(str(tmp_path / "iter-02" / "model")) == 1


def test_rest_em_mix_human_adds_the_human_rows_to_each_m_step(tmp_path):
    with scripted_backend():
        run_method(parse_config(_rest_em(iterations=1, mix_human=True, compute_matched_baseline=False)), tmp_path)
    rec = _records(tmp_path)
    kept = len(read_jsonl(tmp_path / "iter-01" / "data.jsonl"))
    assert rec["iter-01/train"]["data"] == ["iter-01/data.jsonl", "human"]
    assert rec["iter-01/train"]["examples"] == kept + rec["sft/train"]["examples"]
    assert "compute-matched/train" not in rec


def test_the_curriculum_samples_the_levels_reached_and_adds_one_when_the_hardest_is_solved(tmp_path):
    cfg = _rest_em(iterations=3, compute_matched_baseline=False, curriculum={"threshold": 0.5, "start": 1})
    cfg["task"]["arithmetic"].update(pool_digits={1: 1, 2: 1, 3: 1}, human_digits={1: 1})
    with scripted_backend(partial(arithmetic, knows=3)):  # a fake that solves everything: each level passes
        run_method(parse_config(cfg), tmp_path)
    rec = _records(tmp_path)
    sampled = {t: {len(s["prompt"].split("+")[0].lstrip("0")) for s in read_jsonl(tmp_path / f"iter-0{t}" / "samples.jsonl")}
               for t in (1, 2, 3)}
    assert [rec[f"iter-0{t}/curriculum"]["hardest"] for t in (1, 2, 3)] == [1, 2, 3]
    assert [rec[f"iter-0{t}/curriculum"]["next"] for t in (1, 2, 3)] == [2, 3, 3]  # no level 4 in the pool
    assert max(sampled[1]) <= 1 and max(sampled[2]) <= 2 and max(sampled[3]) == 3


def test_distillation_teaches_the_student_from_its_init_and_the_student_teaches_round_2(tmp_path):
    cfg = _rest_em()
    rest_em = cfg.pop("rest_em")
    cfg.update(method="distill", distill={"rounds": 2, "teacher_tiny": TINY, "teacher_sft": TRAIN, "student_sft": TRAIN,
                                          "generate": rest_em["e_step"]})
    with scripted_backend():
        run_method(parse_config(cfg), tmp_path)
    rec = _records(tmp_path)
    assert rec["teacher/train"]["start"] == "teacher-init/model" and rec["student-human/train"]["data"] == ["human"]
    assert rec["round-01/generate"]["model"] == "teacher/model" and rec["round-02/generate"]["model"] == "round-01/model"
    for r in ("round-01", "round-02"):
        assert rec[f"{r}/train"]["start"] == "student-init/model" and rec[f"{r}/train"]["data"] == [f"{r}/data.jsonl", "human"]
    lineage = {row["lineage"]["model"] for row in read_jsonl(tmp_path / "round-02" / "data.jsonl")}
    assert lineage == {"round-01/model"}


def _miniature(**miniature) -> dict:
    return {
        "name": "spec", "method": "self-rewarding",
        "task": {"arithmetic": {"operations": ["+", "-"], "human_size": 40, "pool_size": 20, "test_per_bucket": 3,
                                "test_digits": [1, 2, 3]}},
        "model": {"tiny": TINY, "sampler": {"backend": "scripted"}},
        "self_rewarding": {"iterations": 2, "prompts": {"n": 6}, "responses": {"k": 3, "max_new_tokens": 40},
                           "judge": {"samples": 1, "max_new_tokens": 40}, "dpo": {**TRAIN, "loss_type": "sft"},
                           "miniature": {"pretrain": TRAIN, "sft": TRAIN, "eft_size": 10, "writing_size": 10,
                                         "eval_pairs": 10, **miniature}},
        "eval": {"k": 1, "max_new_tokens": 40},
    }


def test_self_rewarding_trains_each_iteration_from_the_last_on_its_own_pairs(tmp_path):
    with scripted_backend():
        metrics = run_method(parse_config(_miniature(controls=["grader", "sft"])), tmp_path)
    rec = _records(tmp_path)
    assert rec["m0/train"]["start"] == "init/model" and rec["m1/train"]["start"] == "m0/model"
    assert rec["m1/train"]["data"] == ["human", "prompt writing", "eft/samples.jsonl"]
    assert rec["eft/generate"]["model"] == "m0/model" and rec["judge-eval/generate"]["model"] == "m1/model"
    for t, policy in ((1, "m1/model"), (2, "iter-01/model")):
        it = f"iter-0{t}"
        # steps 1-3 sample M_t; step 5 trains M_t on the pairs of this iteration -> M_{t+1}
        assert rec[f"{it}/responses"]["model"] == policy
        # (the pairs, decontaminated: data.jsonl)
        assert rec[f"{it}/train"]["start"] == policy and rec[f"{it}/train"]["data"] == [f"{it}/data.jsonl"]
        pairs = read_jsonl(tmp_path / it / "data.jsonl")
        prompts = {p["prompt"] for p in read_jsonl(tmp_path / it / "prompts.jsonl")}
        assert {p["prompt"] for p in pairs} <= prompts and rec[f"{it}/train"]["pairs"] == len(pairs)
    # the controls start from the same M1: the grader's loop, and SFT for the steps each update took
    assert rec["grader-iter-01/train"]["start"] == "m1/model" and rec["grader-iter-02/train"]["start"] == "grader-iter-01/model"
    assert all(json.loads(line)["reason"].startswith("grader") for line in (tmp_path / "grader-iter-01" / "scores.jsonl").open())
    for t in (1, 2):
        assert rec[f"sft-iter-0{t}/train"]["steps"] == rec[f"iter-0{t}/train"]["steps"]
        assert rec[f"sft-iter-0{t}/train"]["data"] == rec["m1/train"]["data"]
    assert rec["sft-iter-01/train"]["start"] == "m1/model"
    assert [r["label"] for r in metrics["rows"]] == ["M1", "M2", "M3"] and set(metrics["controls"]) == {"grader", "sft"}


def test_self_rewarding_chat_judges_with_the_model_and_compares_with_m1(tmp_path):
    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    model = tmp_path / "chat-model"
    save_tiny(model, TinyModelConfig(arch="llama", **TINY), seed=0, chat=True)
    cfg = {"name": "spec", "method": "self-rewarding",
           "model": {"name_or_path": str(model), "sampler": {"backend": "scripted"}},
           "self_rewarding": {"iterations": 2, "prompts": {"n": 3}, "responses": {"k": 2, "max_new_tokens": 8},
                              "judge": {"samples": 2, "max_new_tokens": 8}, "dpo": {**TRAIN, "batch_size": 2},
                              "chat": {"eval_prompts": 2}}, "eval": {"max_new_tokens": 8}}
    with scripted_backend(chat) as samplers:
        metrics = run_method(parse_config(cfg), tmp_path / "run")
    rec = _records(tmp_path / "run")
    assert rec["iter-01/train"]["start"] == str(model) and rec["iter-02/train"]["start"] == "iter-01/model"
    assert rec["iter-02/train"]["data"] == ["iter-02/data.jsonl"]
    prompts = read_jsonl(tmp_path / "run" / "iter-02" / "prompts.jsonl")
    assert rec["iter-02/responses"]["model"] == "iter-01/model" and rec["iter-02/judge"]["judged"] == 2 * len(prompts) > 0
    # each model's answers are judged by itself and by M1, and compared with M1's
    assert rec["iter-02/m1-judge"]["judged"] == 2 and sum(rec["iter-02/pairwise"].values()) == 2
    assert "m1/m1-judge" not in rec
    assert [r["label"] for r in metrics["rows"]] == ["M1", "M2", "M3"] and "vs_m1" in metrics["rows"][2]
    assert any("Score: <total points>" in p for s in samplers for p in s.prompts)  # the paper's judge prompt


def test_self_rewarding_remedies_each_add_their_step_and_the_update_trains_on_what_they_made(tmp_path):
    remedies = {"meta_judge": {"share": 0.15}, "anchor": {"model": "m0"}, "consistency": {}, "eft_refresh": {"problems": 8}}
    cfg = _miniature()
    cfg["self_rewarding"].update(remedies=remedies, dpo={**TRAIN, "loss_type": "sigmoid", "nll_weight": 1.0},
                                 judge={"samples": 3, "max_new_tokens": 40})
    with scripted_backend():
        run_method(parse_config(cfg), tmp_path)
    rec = _records(tmp_path)
    capped = []
    for t, policy, previous in ((1, "m1/model", "m0/model"), (2, "iter-01/model", "m1/model")):
        it = f"iter-0{t}"
        # anchor: M0 answers the same prompts, M_t judges them; every rejected is one of M0's answers
        assert rec[f"{it}/anchor-responses"]["model"] == "m0/model" and rec[f"{it}/anchor-judge"]["model"] == policy
        theirs = {s["completion"] for s in read_jsonl(RunDir(tmp_path).output(f"{it}/anchor-responses", "samples"))}
        answer_pairs = read_jsonl(tmp_path / it / "pairs.jsonl")
        assert answer_pairs and all(p["rejected"] in theirs for p in answer_pairs)
        assert rec[f"{it}/pairs"]["anchored"] == len(answer_pairs)
        # meta-judge and EFT refresh: M_t judges its own judgements and its answers to labelled problems
        assert rec[f"{it}/meta-judge"]["model"] == policy and rec[f"{it}/eft-answers"]["model"] == policy
        mix = rec[f"{it}/mix"]
        assert mix["answer_pairs"] == len(answer_pairs) and mix["eft_pairs"] == rec[f"{it}/eft-pairs"]["kept"]
        assert mix["meta_judge_pairs_made"] == rec[f"{it}/meta-judge"]["pairs"]
        assert mix["meta_judge_pairs"] <= 0.15 / 0.85 * (mix["answer_pairs"] + mix["eft_pairs"])
        capped.append(mix["meta_judge_pairs_made"] > mix["meta_judge_pairs"])
        update = read_jsonl(tmp_path / it / "update-pairs.jsonl")
        assert len(update) == mix["answer_pairs"] + mix["meta_judge_pairs"] + mix["eft_pairs"]
        assert all(p["problem_id"].startswith("eft:") for p in update[len(update) - mix["eft_pairs"]:])
        assert all(p["prompt"].endswith("=") for p in update if p["problem_id"].startswith(("meta:", "eft:")))  # checks
        # consistency: the previous model judges the same responses; the update trains with its C
        assert rec[f"{it}/previous-judge"]["model"] == previous
        c = json.loads((tmp_path / it / "consistency.json").read_text())["consistency"]
        train = rec[f"{it}/train"]
        assert train["start"] == policy and train["consistency"] == c and 0.0 <= train["label_smoothing"] < 0.5
        assert train["data"] == [f"{it}/data.jsonl"] and train["pairs"] == len(read_jsonl(tmp_path / it / "data.jsonl"))
    assert any(capped)  # the meta-judge made more pairs than the share lets in


def test_self_rewarding_chat_remedies_run_each_step_through_the_chat_model(tmp_path):
    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    model = tmp_path / "chat-model"
    save_tiny(model, TinyModelConfig(arch="llama", **TINY), seed=0, chat=True)
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"prompt": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n" for i in range(4)))
    cfg = {"name": "spec", "method": "self-rewarding",
           "model": {"name_or_path": str(model), "sampler": {"backend": "scripted"}},
           "self_rewarding": {"iterations": 2, "prompts": {"n": 3}, "responses": {"k": 3, "max_new_tokens": 8},
                              "judge": {"samples": 3, "max_new_tokens": 8},
                              "dpo": {**TRAIN, "batch_size": 2, "loss_type": "sigmoid"},
                              "remedies": {"meta_judge": {"share": 0.5}, "anchor": {"model": "m1"}, "consistency": {},
                                           "eft_refresh": {"problems": 4, "data": str(labelled)}},
                              "chat": {"eval_prompts": 2}}, "eval": {"max_new_tokens": 8}}
    with scripted_backend(chat) as samplers:
        run_method(parse_config(cfg), tmp_path / "run")
    rec, run = _records(tmp_path / "run"), tmp_path / "run"
    assert rec["iter-01/anchor-responses"]["model"] == rec["iter-02/anchor-responses"]["model"] == str(model)
    assert rec["iter-02/anchor-judge"]["model"] == "iter-01/model"
    # CREAM: no model before the given one, so iteration 1 keeps hard labels; iteration 2 asks M1
    assert "iter-01/previous-judge" not in rec and rec["iter-01/train"]["consistency"] == 1.0
    assert rec["iter-02/previous-judge"]["model"] == str(model)
    # the meta-judge compares two judgements of one response in both orders; its pairs are judgements
    meta_prompts = [p for s in samplers for p in s.prompts if "<judgement A>" in p]
    assert meta_prompts and len(meta_prompts) % 2 == 0
    meta = read_jsonl(run / "iter-01" / "meta-judge.jsonl")
    assert all("Score:" in p["chosen"] and "Score:" in p["rejected"] and "Score: <total points>" in p["prompt"] for p in meta)
    # EFT refresh: the labelled prompts answered, graded, judged; a pair's chosen agrees with the label
    assert rec["iter-01/eft-answers"]["samples"] == 4 * 3 and rec["iter-01/eft-labels"]["samples"] == 12
    assert rec["iter-01/eft-pairs"]["kept"] > 0
    for p in read_jsonl(run / "iter-01" / "eft-pairs.jsonl"):
        assert p["chosen_score"] <= 2 < p["rejected_score"]  # the fake's answers are all wrong
    mix = rec["iter-01/mix"]
    assert mix["eft_pairs"] == rec["iter-01/eft-pairs"]["kept"] and mix["meta_judge_pairs_made"] == len(meta)
    update = read_jsonl(run / "iter-01" / "data.jsonl")
    assert len(update) == rec["iter-01/train"]["pairs"] > mix["answer_pairs"]


def _own_problems(**own) -> dict:
    return {
        "name": "spec", "method": "own-problems",
        "task": {"arithmetic": {"layout": "reversed", "human_size": 30, "human_digits": {1: 0.2, 2: 0.4, 3: 0.4},
                                "pool_size": 0, "test_per_bucket": 3, "test_digits": [1, 2, 3, 4, 5, 6]}},
        "model": {"tiny": {**TINY, "arch": "llama"}, "sampler": {"backend": "scripted"}},
        "own_problems": {"iterations": 2, "sft": TRAIN, "proposer_format": TRAIN, "train": TRAIN, "propose": {"n": 40, "max_new_tokens": 20},
                         "solve": {"k": 4, "max_new_tokens": 12}, "compute_matched_baseline": False, **own},
        "eval": {"k": 1, "max_new_tokens": 12},
    }


def test_own_problems_learns_only_from_problems_it_wrote_answered_by_the_oracle_and_kept_by_the_band(tmp_path, monkeypatch):
    from fakes import reversed_arithmetic

    import selftrain.training.sft
    from selftrain.stages.own_problems import pass_rates
    from selftrain.stages.score import load_scores
    from selftrain.tasks import build_task

    trained: dict[str, list[dict]] = {}
    real = selftrain.training.sft.train_sft
    monkeypatch.setattr(selftrain.training.sft, "train_sft",
                        lambda start, rows, cfg, out, *a, **k: trained.setdefault(out.parent.name, rows) and real(start, rows, cfg, out, *a, **k))
    with scripted_backend(reversed_arithmetic):
        cfg = parse_config(_own_problems())
        run_method(cfg, tmp_path)
    rec, run, task = _records(tmp_path), RunDir(tmp_path), build_task(cfg.task)
    # step 0: the solutions alone, then the proposer's format on the seed problems beside them
    assert rec["sft/train"]["data"] == ["human"]
    assert rec["proposer-format/train"]["data"] == ["human", "seed problems (proposer format)"]
    assert rec["proposer-format/train"]["start"] == "sft/model"
    for t, it in enumerate(("iter-01", "iter-02"), 1):
        proposed = read_jsonl(run.output(f"{it}/propose", "proposed"))
        problems = read_jsonl(run.output(f"{it}/ground-truth", "problems"))
        # every problem it solved was written by the model in this iteration's propose stage, never from a pool
        assert {p["meta"]["written"] for p in problems} <= {r["written"] for r in proposed} and problems
        solved = read_jsonl(run.output(f"{it}/generate", "samples"))
        assert {s["prompt"] for s in solved} == {p["prompt"] for p in problems}
        # ground truth only from the oracle: each answer is what the task's oracle computes for the written text
        assert all(task.oracle(p["meta"]["written"], p["id"]).answer == p["answer"] for p in problems)
        dropped = read_jsonl(run.output(f"{it}/ground-truth", "rejected"))
        assert len(problems) + len(dropped) == len(proposed) == 40 and all(r["reason"] for r in dropped)
        # the band kept exactly the problems solved 1 to 3 times in 4
        rates = pass_rates(stages.load_samples(run.output(f"{it}/generate", "samples")),
                           load_scores(run.output(f"{it}/score", "scores")))
        kept = read_jsonl(run.output(f"{it}/band", "kept"))
        assert sorted(r["id"] for r in kept) == sorted(pid for pid, r in rates.items() if 0.25 <= r <= 0.75)
        assert rec[f"{it}/band"]["kept"] == len(kept) > 0 and rec[f"{it}/band"]["problems"] == len(problems)
        assert all(4 <= int(r["bucket"]) <= 5 for r in kept)  # the fake solves <= 3 digits always, >= 6 never
        # the solver trained on its right solutions of kept problems, the proposer on the requests that led to them
        rows = trained[it]
        solutions = [r for r in rows if not r["prompt"].endswith("\n")]
        requests = [r for r in rows if r["prompt"].endswith("\n")]
        assert {r["prompt"] for r in solutions} <= {r["prompt"] for r in kept}
        assert sorted(r["completion"] for r in requests) == sorted(r["written"] for r in kept)
        assert rec[f"{it}/train"]["start"] == ("proposer-format/model" if t == 1 else "iter-01/model")
    # the second iteration's proposer was shown the problems the first band kept
    shown = {line for r in read_jsonl(run.output("iter-02/propose", "proposed")) for line in r["request"].splitlines()}
    assert shown <= {r["written"] for r in read_jsonl(run.output("iter-01/band", "kept"))}
    assert rec["iter-02/propose"]["examples"] == "kept"


def test_own_problems_resumes_after_a_kill_to_the_same_metrics_and_runs_its_controls(tmp_path):
    from fakes import reversed_arithmetic

    from selftrain import faults

    with scripted_backend(reversed_arithmetic):
        cfg = parse_config(_own_problems(controls=["random", "prompted"]))
        whole = run_method(cfg, tmp_path / "run")  # the fake answers by checkpoint folder: the same folder again
        records = _records(tmp_path / "run")
        shutil.rmtree(tmp_path / "run")

        def kill():
            raise KeyboardInterrupt("killed at the fault point")

        with faults.on("iter-02/samples.jsonl:shard0", kill), pytest.raises(KeyboardInterrupt):
            run_method(cfg, tmp_path / "run")
        assert RunDir(tmp_path / "run").record("iter-02/generate") is None
        resumed = run_method(cfg, tmp_path / "run")
    assert [r["test"] for r in resumed["rows"]] == [r["test"] for r in whole["rows"]]
    labels = [r["label"] for r in whole["rows"]]
    assert "random subset (control) iteration 2" in labels and "untrained proposer (control) iteration 2" in labels
    rec = records
    assert rec["random-iter-01/band"]["kept_by"] == "random" and rec["random-iter-01/band"]["kept"] == rec["random-iter-01/band"]["in_band"]
    assert "seed problems" not in str(rec["prompted-iter-01/train"]["data"]) and len(rec["prompted-iter-01/train"]["data"]) == 1
    # the untrained proposer is p_0 in every iteration; its solver is trained
    assert rec["prompted-iter-02/propose"]["model"] == rec["prompted-iter-01/propose"]["model"] == rec["iter-01/propose"]["model"]
    assert rec["prompted-iter-02/generate"]["model"] == "prompted-iter-01/model"
