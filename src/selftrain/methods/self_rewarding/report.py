"""The Self-Rewarding report: both abilities by iteration (the actor and the judge), as the
paper's tables, with the miniature's controls beside them."""

from __future__ import annotations

from typing import Any

from selftrain import stages
from selftrain.artifacts import RunDir
from selftrain.methods.self_rewarding.config import SelfRewardingConfig
from selftrain.report import escape, line_chart, page, pct, table
from selftrain.stages.self_rewarding import judge_evaluation

STEPS = ("prompts", "judge", "pairs", "train", "mix", "consistency", "meta-judge", "eft-pairs")
"""The loop's stages whose records each model's row carries."""


def _groups(cfg: SelfRewardingConfig, prefix: str) -> list[str]:
    return ["m1"] + [stages.group("iter", t, prefix) for t in range(1, cfg.self_rewarding.iterations + 1)]


def _steps(run: RunDir, group: str) -> dict[str, Any]:
    found = {stage: run.record(f"{group}/{stage}") for stage in STEPS}
    return {stage: rec.info for stage, rec in found.items() if rec is not None}


def miniature_rows(run: RunDir, cfg: SelfRewardingConfig, prefix: str = "") -> list[dict[str, Any]]:
    """The miniature, one row per model (M1, then each iteration of the loop whose groups
    start with `prefix`): answer accuracy and the judge's pairwise accuracy, measured exactly."""
    rows = []
    for i, group in enumerate(_groups(cfg, prefix)):
        test, judged = stages.evaluation(run, group), judge_evaluation(run, group)
        if test is not None and judged is not None:
            rows.append({"group": group, "label": f"M{i + 1}", "test": test, **judged, **_steps(run, group)})
    return rows


def chat_rows(run: RunDir, cfg: SelfRewardingConfig, prefix: str = "") -> list[dict[str, Any]]:
    """A chat model, one row per model: its held-out answers' scores by itself and by M1, and
    its wins against M1 (from the stages' records; a model is left out until they are done)."""
    rows = []
    for i, group in enumerate(_groups(cfg, prefix)):
        own = run.record(f"{group}/self-judge")
        if own is None:
            continue
        row: dict[str, Any] = {"group": group, "label": f"M{i + 1}", "self_judged": own.info["mean"],
                               "self_unreadable": own.info["unreadable"], "self_finished": own.info["finished"],
                               "m1_judged": own.info["mean"]}
        fixed, vs = run.record(f"{group}/m1-judge"), run.record(f"{group}/pairwise")
        if group != "m1":
            if fixed is None or vs is None:
                continue
            row.update(m1_judged=fixed.info["mean"], vs_m1=vs.info)
        rows.append({**row, **_steps(run, group)})
    return rows


def model_rows(run: RunDir, cfg: SelfRewardingConfig, prefix: str = "") -> list[dict[str, Any]]:
    """One row per model, as the run's variant measures it."""
    return (chat_rows if cfg.self_rewarding.variant == "chat" else miniature_rows)(run, cfg, prefix)


def remedies_did(r: dict[str, Any]) -> str:
    """What the remedies did in one iteration, from its stages' records ("" when none ran)."""
    pairs, did = r.get("pairs", {}), []
    if "anchored" in pairs:
        did.append(f"{pairs['anchored']} anchored pairs (own rejected: {pairs['own_pairs']})")
    if "mix" in r:
        m = r["mix"]
        if "meta-judge" in r:
            did.append(f"meta-judge pairs {m['meta_judge_pairs']} of {m['meta_judge_pairs_made']}")
        if "eft-pairs" in r:
            did.append(f"EFT pairs {m['eft_pairs']}")
        did.append(f"judge share {m['judge_share']:.0%}")
    if "eft-pairs" in r:
        did.append(f"judge errors on labelled answers {r['eft-pairs']['judge_error_rate']:.0%}")
    if "consistency" in r:
        did.append(f"consistency C {r['consistency']['consistency']:.3f}")
    if did and "all_equal_share" in pairs:
        did.append(f"all-equal prompts {pairs['all_equal_share']:.0%}")
    return "; ".join(did)


CONTROLS = {"grader": ("grader-", "grader-judged"), "sft": ("sft-", "compute-matched SFT")}


def collect(run: RunDir, cfg: SelfRewardingConfig) -> dict[str, Any]:
    """metrics.json for a Self-Rewarding run: one row per model, M1 then each iteration; and,
    for the miniature, the same for each control."""
    sec = cfg.self_rewarding
    out: dict[str, Any] = {"method": "self-rewarding", "variant": sec.variant, "name": cfg.name, "seed": cfg.seed,
                           "rows": model_rows(run, cfg)}
    if sec.variant == "chat":
        return {**out, "model": cfg.model.name_or_path}
    controls = {name: miniature_rows(run, cfg, CONTROLS[name][0]) for name in sec.miniature.controls}
    return {**out, **({"controls": controls} if controls else {})}


def render(metrics: dict[str, Any]) -> str:
    return (render_chat if _variant(metrics) == "chat" else render_miniature)(metrics)


def summary(metrics: dict[str, Any]) -> list[str]:
    return (summary_chat if _variant(metrics) == "chat" else summary_miniature)(metrics)


def _variant(metrics: dict[str, Any]) -> str:
    return metrics.get("variant") or ("chat" if metrics.get("chat") else "miniature")  # metrics.json of earlier versions


def _title(metrics: dict[str, Any]) -> str:
    return f"selftrain: {escape(str(metrics['name']))} (seed {metrics['seed']})"


def render_chat(metrics: dict[str, Any]) -> str:
    """The chat variant's page: each model's held-out answers as judged, and against M1's."""
    body = []
    for r in metrics["rows"]:
        vs, judged = r.get("vs_m1"), r.get("judge")
        body.append([r["label"], r.get("self_judged"), r.get("m1_judged"),
                     f"{vs['wins']} / {vs['losses']} / {vs['undecided']}" if vs else "",
                     r.get("prompts", {}).get("kept", ""),
                     f"{judged['judged']} ({judged['unreadable']} / {judged.get('finished', 0)})" if judged else "",
                     r.get("pairs", {}).get("pairs", ""), r.get("train", {}).get("reward_margin", ""),
                     remedies_did(r)])
    head = ["model", "self-judged score (0-5)", "M1-judged score (0-5)", "vs M1 (wins / losses / undecided)",
            "new prompts", "judgements (unreadable / finished)", "pairs", "DPO reward margin", "remedies"]
    return page(_title(metrics), f"<p>Self-Rewarding on {escape(str(metrics['model']))}: each model's greedy answers to held-out "
                "prompts, scored with the paper's additive 5-point prompt by the model itself and by M1, and judged "
                "head to head against M1's answers by M1 (a win counts when both orders agree).</p>" + table(head, body))


def render_miniature(metrics: dict[str, Any]) -> str:
    """The miniature's page: both abilities by iteration, as the paper's tables, with the controls."""
    rows, controls = metrics["rows"], metrics.get("controls", {})
    head = ["model", "answer accuracy %", "judge pairwise accuracy %", "judge ties %", "new prompts", "pairs",
            "self-chosen truly right %", "remedies"]

    def line(label: str, r: dict[str, Any]) -> list[Any]:
        return [label, pct(r["test"]["accuracy"]), pct(r["judge_accuracy"]), pct(r["judge_ties"]),
                r.get("prompts", {}).get("kept", ""), r.get("pairs", {}).get("pairs", ""),
                pct(r.get("pairs", {}).get("chosen_truly_right")), remedies_did(r)]

    body = [line(r["label"], r) for r in rows]
    for name, got in controls.items():
        body += [line(f"{r['label']} ({CONTROLS[name][1]})", r) for r in got[1:]]
    series = [("answer accuracy", [r["test"]["accuracy"] for r in rows], "#1f77b4"),
              ("judge accuracy", [r["judge_accuracy"] for r in rows], "#d62728"),
              ("self-chosen truly right", [rows[0]["test"]["accuracy"]] + [r.get("pairs", {}).get("chosen_truly_right", 0.0)
                                                                            for r in rows[1:]], "#2ca02c")]
    colours = {"grader": ("#9467bd", "#e377c2"), "sft": ("#8c564b", "#7f7f7f")}
    for name, got in controls.items():
        if len(got) == len(rows):
            series.append((f"answer, {CONTROLS[name][1]}", [r["test"]["accuracy"] for r in got], colours[name][0]))
            series.append((f"judge, {CONTROLS[name][1]}", [r["judge_accuracy"] for r in got], colours[name][1]))
    chart = line_chart("Both abilities by model (M1 = SFT, then one per iteration)", list(range(1, len(rows) + 1)), series,
                       x_label="model M1, M2, ...")
    return page(_title(metrics), f"""<p>Self-Rewarding: answer accuracy is greedy decoding on the held-out test set, graded exactly;
judge accuracy is how often the model's own greedy judgement scores the right response of a
held-out pair (one right, one wrong answer by M1 to a test problem) higher. "Self-chosen truly right":
of the pairs the model built from its own judgements, how many chosen answers the grader finds right
(the chart's first point of that line is M1's accuracy, for scale). Controls from the same M1: the
same loop with the task's exact check making the pairs (a perfect judge), and SFT on M1's own data
for the same steps (compute-matched).</p>
{table(head, body)}
<div class="charts">{chart}</div>""")


def summary_chat(metrics: dict[str, Any]) -> list[str]:
    return [f"{r['label']:<4} self-judged {r.get('self_judged')}  M1-judged {r.get('m1_judged')}  vs M1 {r.get('vs_m1')}"
            for r in metrics["rows"]]


def summary_miniature(metrics: dict[str, Any]) -> list[str]:
    def line(label: str, r: dict[str, Any]) -> str:
        chosen, did = r.get("pairs", {}).get("chosen_truly_right"), remedies_did(r)
        return (f"{label:<32} answer accuracy {r['test']['accuracy'] * 100:5.1f}%   judge pairwise accuracy "
                f"{r['judge_accuracy'] * 100:5.1f}%" + (f"   self-chosen truly right {chosen * 100:5.1f}%" if chosen is not None else "")
                + (f"\n{'':<33}{did}" if did else ""))

    out = [line(r["label"], r) for r in metrics["rows"]]
    for name, got in metrics.get("controls", {}).items():
        out += [line(f"{r['label']} ({CONTROLS[name][1]})", r) for r in got[1:]]
    return out
