"""Running a method, and the results a person reads: `RUN/metrics.json`, `RUN/report.html`,
and a dataset card (`README.md`) beside every `data.jsonl` (`selftrain.data.cards`).

Both are rebuilt from the files the stages wrote, so `selftrain report RUN` works on a
finished run, on a run still going, and on a run copied from another machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from selftrain.artifacts import RunDir, atomic_write_text, read_json, write_json
from selftrain.data.cards import write_cards
from selftrain.data.profile import profiles
from selftrain.data.profile import render as render_profiles
from selftrain.errors import SelftrainError
from selftrain.methods import complete, get_method, parse_config
from selftrain.stages.context import open_run


def default_out(cfg) -> Path:
    return Path("runs") / f"{cfg.name}-seed{cfg.seed}"


def run_method(cfg, out: str | Path | None = None, check: bool = True) -> dict[str, Any]:
    """Run (or resume) the method `cfg` names in the folder `out`; returns the metrics. With
    `check`, the run's data, lengths and verifier are checked first (`preflight`, without its
    sample batch) and a failed check stops it before any stage."""
    method = get_method(cfg.method)
    cfg = complete(cfg)
    out = Path(out) if out is not None else default_out(cfg)
    start = time.perf_counter()
    with open_run(cfg, out) as ctx:
        if hasattr(cfg, "task"):
            ctx.task  # noqa: B018 - the task's data are read (and checked) before any stage runs
        if check:
            found = preflight(cfg, sample=False, task=getattr(ctx, "task", None) if hasattr(cfg, "task") else None)
            failed = [c for c in found if c.status == "fail"]
            if failed:
                raise CheckFailed("the run's checks failed before any stage (selftrain check CONFIG for all of them; "
                                  "--no-check to run anyway):\n" + render_checks(failed))
        method.run(ctx)
        ctx.save_engines()
        _, metrics = publish(out, time.perf_counter() - start)
    return metrics


class CheckFailed(SelftrainError):
    """A check before the run failed: the message is the table of what failed."""


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    """`ok`, `warn` (the run may go on) or `fail` (it must not)."""
    detail: str


def preflight(cfg, sample: bool = True, task=None, most: int = 200) -> list[Check]:  # noqa: C901
    """What a run will meet, checked in seconds before anything is spent: the task's data
    (rows per split, empty reference answers, duplicates, test overlap), the lengths (the
    longest prompt plus each sampling stage's `max_new_tokens` against the model's context),
    the verifier on the human data (each worked solution, or the reference written as an
    answer: accepted, and nothing raised), and with `sample`, a small batch from the start
    model with the verifier's verdicts (the format readable, not right) and the plan's samples
    and tokens, timed at the batch's rate. `most`: problems checked per split."""
    checks: list[Check] = []
    if not hasattr(cfg, "task"):
        return [Check("data", "ok", f"{cfg.method} has no task: nothing to check before it runs")]
    from selftrain.tasks import build_task

    try:
        task = task or build_task(cfg.task)
        splits = {"human": task.human(), "pool": task.pool(), "test": task.test()}
    except SelftrainError as err:
        return [Check("data", "fail", str(err))]
    checks.append(_data_check(splits))
    checks.append(_length_check(cfg, splits))
    checks.append(_verifier_check(task, splits, most))
    if sample:
        checks += _sample_checks(cfg, task, splits)
    return checks


def _data_check(splits: dict[str, list]) -> Check:
    counts = ", ".join(f"{n} {name}" for name, n in ((k, len(v)) for k, v in splits.items()))
    problems = []
    if not splits["test"]:
        problems.append("no test problems")
    if not splits["human"] and not splits["pool"]:
        problems.append("neither human data nor a pool")
    if problems:
        return Check("data", "fail", f"{counts}: {'; '.join(problems)}")
    notes = []
    empty = sum(1 for split in ("pool", "test") for p in splits[split] if not str(p.answer).strip())
    if empty:
        notes.append(f"{empty} problems with an empty reference answer")
    for name, problems_ in splits.items():
        dup = len(problems_) - len({p.prompt for p in problems_})
        if dup:
            notes.append(f"{dup} duplicate prompts in {name}")
    test = {p.prompt for p in splits["test"]}
    overlap = sum(p.prompt in test for name in ("human", "pool") for p in splits[name])
    if overlap:
        notes.append(f"{overlap} training prompts are test prompts (decontamination drops them)")
    return Check("data", "warn" if notes else "ok", counts + (f"; {'; '.join(notes)}" if notes else ""))


def _sampling_lengths(cfg) -> list[tuple[str, int]]:
    """Each sampling setting of the config with its `max_new_tokens`, by dotted name."""
    from pydantic import BaseModel

    from selftrain.config import Sampling

    out = []

    def walk(model: Any, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, Sampling) and value.max_new_tokens is not None:
                out.append((f"{prefix}{name}", value.max_new_tokens))
            if isinstance(value, BaseModel):
                walk(value, f"{prefix}{name}.")

    walk(cfg, "")
    return out


def _length_check(cfg, splits: dict[str, list]) -> Check:
    from selftrain.models import load_tokenizer

    model = cfg.model
    try:
        if model.name_or_path is None:
            from selftrain.training.tiny import build_char_tokenizer

            tok, context = build_char_tokenizer(), model.tiny.max_length
        else:
            from transformers import AutoConfig

            tok = load_tokenizer(model.name_or_path)
            conf = AutoConfig.from_pretrained(model.name_or_path)
            context = model.sampler.vllm.max_model_len or getattr(conf, "max_position_embeddings", None) or 10**9
    except SelftrainError as err:
        return Check("lengths", "fail", f"cannot load the model's tokenizer: {err}")
    except (OSError, ValueError) as err:
        return Check("lengths", "warn", f"the model's context is unknown ({type(err).__name__}); lengths not checked")
    prompts = [p.prompt for split in splits.values() for p in split]
    longest = max((len(tok(t)["input_ids"]) for t in prompts), default=0)
    over = [(where, new) for where, new in _sampling_lengths(cfg) if longest + new > context]
    if over:
        return Check("lengths", "fail", f"the longest prompt ({longest} tokens) + max_new_tokens exceeds the model's context "
                                        f"({context}) in: " + ", ".join(f"{w} ({new})" for w, new in over))
    return Check("lengths", "ok", f"longest prompt {longest} tokens; + the largest max_new_tokens "
                                  f"{max((n for _, n in _sampling_lengths(cfg)), default=0)} fits the context ({context})")


def _as_answer(task, problem) -> str:
    """The human solution, or the reference answer written as a completion the verifier reads."""
    if problem.solution:
        return problem.solution
    marker = getattr(getattr(task, "cfg", None), "marker", None)
    return f"{marker}{problem.answer}" if getattr(task.cfg, "verifier", "") == "exact" and marker else \
        f"The answer is {problem.answer}."


def _verifier_check(task, splits: dict[str, list], most: int, threshold: float = 0.8) -> Check:
    from collections import Counter

    problems = [p for p in splits["human"] if p.solution][:most] or (splits["pool"] + splits["test"])[:most]
    if not problems:
        return Check("verifier", "warn", "no problem with an answer to check the verifier on")
    completions = [_as_answer(task, p) for p in problems]
    try:
        scores = task.verifier()(problems, completions)
    except SelftrainError as err:
        return Check("verifier", "fail", str(err))
    accepted = sum(s.accepted for s in scores)
    reasons = Counter(s.reason for s in scores if not s.accepted)
    raised = [s for s in scores if s.value is None and "raised" in s.reason]
    what = "human solutions" if problems[0].solution else "reference answers written as answers"
    detail = f"{accepted} of {len(problems)} {what} accepted"
    if reasons:
        detail += "; not accepted: " + "; ".join(f"{n} x {why}" for why, n in reasons.most_common(4))
    from selftrain.verifiers.function import FunctionVerifier, columns_of

    verifier = task.verifier()
    if isinstance(verifier, FunctionVerifier):
        detail += f". {verifier.target} is called with prompts, completions and: {', '.join(sorted(columns_of(problems)))}"
    failed = raised or accepted < threshold * len(problems)
    return Check("verifier", "fail" if failed else "ok", detail)


def _sample_checks(cfg, task, splits: dict[str, list], n: int = 8) -> list[Check]:
    import tempfile
    import time as clock

    from selftrain.records import SamplingParams
    from selftrain.samplers import make_sampler

    problems = splits["test"][:n]
    new = cfg.eval.max_new_tokens
    with tempfile.TemporaryDirectory() as tmp:
        model = cfg.model.name_or_path
        if model is None:
            from selftrain.training.tiny import save_tiny

            save_tiny(Path(tmp) / "model", cfg.model.tiny, cfg.seed)
            model = str(Path(tmp) / "model")
        try:
            sampler = make_sampler(cfg.model.sampler, model, Path(tmp))
            t0 = clock.perf_counter()
            outs = sampler.generate([p.prompt for p in problems], SamplingParams(temperature=0.0, max_new_tokens=new), 0)
            seconds = clock.perf_counter() - t0
            tok = getattr(sampler, "tokenizer", None)
            tokens = sum(len(tok(o, add_special_tokens=False)["input_ids"]) if tok else len(o) for o in outs)
        except SelftrainError as err:
            return [Check("sampler", "fail", str(err))]
        finally:
            from selftrain.samplers import close

            close(locals().get("sampler"))
    scores = task.verifier()(problems, outs)
    verdicts = f"{sum(s.accepted for s in scores)} accepted, {sum(s.value == 0 for s in scores)} rejected, " \
               f"{sum(s.value is None for s in scores)} unjudged"
    example = f"e.g. {outs[0][:60]!r}: {scores[0].reason}" if outs else ""
    rate = tokens / seconds if seconds > 0 else 0.0
    checks = [Check("sampler", "ok", f"{len(problems)} test prompts from the start model in {seconds:.1f} s "
                                     f"({rate:.0f} tokens/s): {verdicts}; {example}")]
    plan = get_method(cfg.method).plan(cfg, {k: len(v) for k, v in splits.items()})
    if plan:
        sequences = sum(s for _, s, _ in plan)
        tokens_planned = sum(s * t for _, s, t in plan)
        minutes = tokens_planned / rate / 60 if rate else float("nan")
        checks.append(Check("plan", "ok", f"{sequences:,} sequences, at most {tokens_planned:,} new tokens: about "
                                          f"{minutes:.0f} min of sampling at this rate (training not included); "
                                          + ", ".join(f"{stage} {s:,}" for stage, s, _ in plan[:6])
                                          + (" ..." if len(plan) > 6 else "")))
    return checks


def render_checks(checks: list[Check]) -> str:
    """One line per check: what, its status, what was found."""
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    return "\n".join(f"  {marks[c.status]}  {c.name:<9} {c.detail}" for c in checks)


def write_report(run_dir: str | Path) -> Path:
    """Rebuild `metrics.json` and `report.html` from a run folder; returns the page's path."""
    return publish(run_dir)[0]


def publish(run_dir: str | Path, wall_seconds: float | None = None) -> tuple[Path, dict[str, Any]]:
    """Collect a run's metrics once, write `metrics.json` and `report.html`; returns both.

    `wall_seconds` is the finishing process's time; without it, the one already recorded
    in `metrics.json` is kept."""
    run = RunDir(run_dir)
    cfg_path = run.path("config.yaml")
    if not cfg_path.exists():
        raise SelftrainError(f"{run.root} is not a run folder (no config.yaml)")
    cfg = parse_config(yaml.safe_load(cfg_path.read_text()), str(cfg_path))
    method = get_method(cfg.method)
    metrics = method.collect(run, cfg)
    metrics["data"] = profiles(run.root)
    engines = engine_counts(run.root)
    if engines:
        metrics["engines"] = engines
    errors = verifier_error_counts(run.root)
    if errors:
        metrics["verifier_errors"] = errors
    metrics_path = run.path("metrics.json")
    if wall_seconds is not None:
        metrics["wall_seconds_this_process"] = round(wall_seconds, 1)
    elif metrics_path.exists():
        old = read_json(metrics_path)
        if "wall_seconds_this_process" in old:
            metrics["wall_seconds_this_process"] = old["wall_seconds_this_process"]
    write_json(metrics_path, metrics)
    page = run.path("report.html")
    extra = render_profiles(metrics["data"]) + render_engines(engines) + render_verifier_errors(errors)
    atomic_write_text(page, method.render(metrics).replace("</body>", extra + "\n</body>"))
    write_cards(run, cfg)
    return page, metrics


def engine_counts(run_dir: Path) -> dict[str, int]:
    """How the run's models were served, over every process of it (`RUN/engines.jsonl`):
    sampler starts (a vLLM engine, or a model loaded), LoRA swaps, in-place reloads."""
    import json
    from collections import Counter

    path = Path(run_dir) / "engines.jsonl"
    total: Counter = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            total.update({k: v for k, v in json.loads(line).items() if k != "pid"})
    return dict(total)


def verifier_error_counts(run_dir: Path) -> dict[str, int]:
    """Verdicts left unjudged because the checker itself failed (math-verify's exceptions by
    name, timeouts), over every scores.jsonl of the run."""
    from collections import Counter

    from selftrain.stages.score import load_scores, verifier_errors

    total: Counter = Counter()
    for path in sorted(Path(run_dir).glob("**/scores.jsonl")):
        total.update(verifier_errors(load_scores(path)))
    return dict(sorted(total.items()))


def render_verifier_errors(errors: dict[str, int]) -> str:
    if not errors:
        return ""
    return ("<p>Unjudged because the checker failed: " + ", ".join(f"{name} {n}" for name, n in errors.items())
            + " (the samples' scores.jsonl give each reason).</p>")


def render_engines(engines: dict[str, int]) -> str:
    if not engines:
        return ""
    return (f"<p>Models served: {engines.get('start', 0)} sampler starts (an engine started or a model loaded), "
            f"{engines.get('lora', 0)} LoRA adapters served by the engine already up, "
            f"{engines.get('reload', 0)} checkpoints loaded into it in place (RUN/engines.jsonl).</p>")


def summary(metrics: dict[str, Any]) -> list[str]:
    return get_method(metrics["method"]).summary(metrics)
