"""Results a person reads: `RUN/metrics.json` and `RUN/report.html`.

Both are rebuilt from the files the stages wrote, so `selftrain report RUN` works on a
finished run, on a run still going, and on a run copied from another machine.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import yaml

from selftrain.artifacts import RunDir, atomic_write_text, read_json, write_json
from selftrain.config import RunConfig, parse_config

BASELINES = {"sft": "SFT on human data", "compute-matched": "SFT on human data, compute-matched"}
STAGES = ("build", "generate", "score", "select", "train", "evaluate")


def _seconds(run: RunDir, group: str) -> dict[str, float]:
    out = {}
    for stage in STAGES:
        rec = run.record(f"{group}/{stage}")
        if rec is not None:
            out[stage] = rec.seconds
    return out


def collect_metrics(run: RunDir, cfg: RunConfig) -> dict[str, Any]:
    """Per baseline and per iteration: test metrics, E-step counts, training, seconds."""
    rows: list[dict[str, Any]] = []
    k, its = cfg.rest_em.iterations, cfg.train.steps
    steps = {"sft": cfg.sft.steps, "compute-matched": cfg.sft.steps + k * its}
    for group, label in BASELINES.items():
        path = run.path(group, "eval.json")
        if path.exists():
            rows.append(
                {
                    "group": group,
                    "label": label,
                    "kind": "baseline",
                    "train_steps_total": steps[group],
                    "test": read_json(path),
                    "seconds": _seconds(run, group),
                }
            )
    for t in range(1, k + 1):
        group = f"iter-{t:02d}"
        path = run.path(group, "eval.json")
        if not path.exists():
            continue
        score, select, train = (run.record(f"{group}/{s}") for s in ("score", "select", "train"))
        total = {"previous": cfg.sft.steps + t * its, "base": cfg.sft.steps + its, "init": its}[cfg.rest_em.start_from]
        rows.append(
            {
                "group": group,
                "label": f"ReST-EM iteration {t}",
                "kind": "rest-em",
                "iteration": t,
                "train_steps_total": total,
                "estep": {**(score.info if score else {}), **(select.info if select else {})},
                "train": train.info if train else {},
                "test": read_json(path),
                "seconds": _seconds(run, group),
            }
        )
    return {
        "name": cfg.name,
        "method": cfg.method,
        "seed": cfg.seed,
        "start_from": cfg.rest_em.start_from,
        "rows": rows,
        "stage_seconds_total": round(sum(sum(r["seconds"].values()) for r in rows) + sum(_seconds(run, "init").values()), 1),
    }


# --- the page ---------------------------------------------------------------------------

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]


def line_chart(
    title: str,
    xs: list[int],
    series: list[tuple[str, list[float], str]],
    hlines: list[tuple[str, float, str]] = (),
    x_label: str = "iteration (0 = SFT on human data)",
) -> str:
    """A small SVG line chart: y in [0, 1] as percent; dashed horizontal reference lines."""
    w, h, ml, mr, mt, mb = 560, 300, 48, 190, 28, 40
    pw, ph = w - ml - mr, h - mt - mb
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1

    def px(x: float) -> float:
        return ml + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return mt + (1 - y) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{ml}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i in range(6):
        y = i / 5
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{ml - 6}" y="{py(y) + 4:.1f}" font-size="11" text-anchor="end">{int(y * 100)}%</text>')
    for x in xs:
        parts.append(f'<text x="{px(x):.1f}" y="{mt + ph + 16}" font-size="11" text-anchor="middle">{x}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{h - 6}" font-size="11" text-anchor="middle">{html.escape(x_label)}</text>')
    legend_y = mt + 4
    for name, y, color in hlines:
        parts.append(
            f'<line x1="{ml}" x2="{ml + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="{color}" stroke-dasharray="5,4"/>'
        )
        parts.append(f'<line x1="{ml + pw + 10}" x2="{ml + pw + 30}" y1="{legend_y}" y2="{legend_y}" stroke="{color}" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{ml + pw + 34}" y="{legend_y + 4}" font-size="11">{html.escape(name)}</text>')
        legend_y += 16
    for name, ys, color in series:
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys) if y is not None)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in zip(xs, ys):
            if y is not None:
                parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"><title>{html.escape(name)}: {y:.1%}</title></circle>')
        parts.append(f'<line x1="{ml + pw + 10}" x2="{ml + pw + 30}" y1="{legend_y}" y2="{legend_y}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{ml + pw + 34}" y="{legend_y + 4}" font-size="11">{html.escape(name)}</text>')
        legend_y += 16
    parts.append("</svg>")
    return "\n".join(parts)


def _pct(v: Any) -> str:
    return f"{v * 100:.1f}" if isinstance(v, (int, float)) else ""


def render_report(metrics: dict[str, Any]) -> str:
    rows = metrics["rows"]
    base = {r["group"]: r for r in rows if r["kind"] == "baseline"}
    its = [r for r in rows if r["kind"] == "rest-em"]
    buckets = sorted({b for r in rows for b in r["test"]["by_bucket"]}, key=lambda b: (len(b), b))
    k_names = sorted(
        {m for r in rows for m in r["test"] if re.fullmatch(r"(pass|maj)@\d+", m)},
        key=lambda m: (m.startswith("maj"), int(m.split("@")[1])),
    )

    head = ["", "train steps", "accuracy %"] + [f"{b}-digit %" if b.isdigit() else f"{b} %" for b in buckets]
    head += [f"{m} %" for m in k_names] + ["samples", "correct", "kept", "seconds"]
    body = []
    for r in rows:
        e = r.get("estep", {})
        cells = [html.escape(r["label"]), str(r["train_steps_total"]), _pct(r["test"]["accuracy"])]
        cells += [_pct(r["test"]["by_bucket"].get(b)) for b in buckets]
        cells += [_pct(r["test"].get(m)) for m in k_names]
        cells += [str(e.get("samples", "")), str(e.get("correct", "")), str(e.get("kept", ""))]
        cells.append(f"{sum(r['seconds'].values()):.0f}")
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = (
        "<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
        + "".join(body) + "</tbody></table>"
    )

    charts = []
    if "sft" in base:
        xs = [0] + [r["iteration"] for r in its]
        sft_test = base["sft"]["test"]
        short = {"sft": "SFT on human data", "compute-matched": "compute-matched SFT"}
        hl = [(short[g], base[g]["test"]["accuracy"], "#555" if g == "sft" else "#d62728") for g in base]
        charts.append(
            line_chart("Test accuracy (greedy)", xs, [("ReST-EM", [sft_test["accuracy"]] + [r["test"]["accuracy"] for r in its], "#1f77b4")], hl)
        )
        series = [
            (f"{b}-digit" if b.isdigit() else b, [sft_test["by_bucket"].get(b)] + [r["test"]["by_bucket"].get(b) for r in its], PALETTE[i % len(PALETTE)])
            for i, b in enumerate(buckets)
        ]
        cm = base["compute-matched"]["test"]["by_bucket"] if "compute-matched" in base else {}
        hl = [(f"{name}, compute-matched", cm[b], color) for (name, _, color), b in zip(series, buckets) if b in cm]
        charts.append(line_chart("Test accuracy by bucket (dashed: compute-matched baseline)", xs, series, hl))
        series = [(m, [sft_test.get(m)] + [r["test"].get(m) for r in its], PALETTE[i % len(PALETTE)]) for i, m in enumerate(k_names)]
        charts.append(line_chart("pass@k and maj@k on the test set", xs, series))

    estep = ""
    if its:
        lines = "".join(
            f"<li>iteration {r['iteration']}: {r['estep'].get('correct', '?')} of {r['estep'].get('samples', '?')} samples correct, "
            f"{r['estep'].get('problems_solved', '?')} problems solved, {r['estep'].get('kept', '?')} kept "
            f"(by bucket: {html.escape(', '.join(f'{b}: {n}' for b, n in r['estep'].get('kept_by_bucket', {}).items()))})</li>"
            for r in its
        )
        estep = f"<h2>E-step</h2><ul>{lines}</ul>"
    title = f"selftrain: {html.escape(str(metrics['name']))} (seed {metrics['seed']})"
    return _page(title, f"""<p>Method {html.escape(str(metrics['method']))}, each iteration fine-tuned from <b>{html.escape(str(metrics['start_from']))}</b>.
Accuracy is greedy decoding on the held-out test set; pass@k (unbiased) and maj@k from k samples per test problem.
Stage seconds in all: {metrics['stage_seconds_total']}.</p>
{table}
<div class="charts">{''.join(charts)}</div>
{estep}""")


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
        from selftrain.errors import SelftrainError

        raise SelftrainError(f"{run.root} is not a run folder (no config.yaml)")
    cfg = parse_config(yaml.safe_load(cfg_path.read_text()), str(cfg_path))
    metrics_path = run.path("metrics.json")
    if cfg.method == "self-rewarding":
        from selftrain.methods.self_rewarding import collect_self_rewarding

        metrics, render = collect_self_rewarding(run, cfg), render_self_rewarding
    elif cfg.method == "self-instruct":
        from selftrain.methods.self_instruct import collect_self_instruct, render_self_instruct

        metrics, render = collect_self_instruct(run, cfg), render_self_instruct
    elif cfg.method == "distill":
        from selftrain.methods.distill import collect_distill, render_distill

        metrics, render = collect_distill(run, cfg), render_distill
    elif cfg.method == "grounded-qa":
        from selftrain.methods.grounded_qa import collect_grounded_qa, render_grounded_qa

        metrics, render = collect_grounded_qa(run, cfg), render_grounded_qa
    else:
        metrics, render = collect_metrics(run, cfg), render_report
    if wall_seconds is not None:
        metrics["wall_seconds_this_process"] = round(wall_seconds, 1)
    elif metrics_path.exists():
        old = read_json(metrics_path)
        if "wall_seconds_this_process" in old:
            metrics["wall_seconds_this_process"] = old["wall_seconds_this_process"]
    write_json(metrics_path, metrics)
    page = run.path("report.html")
    atomic_write_text(page, render(metrics))
    return page, metrics


def render_self_rewarding(metrics: dict[str, Any]) -> str:
    """Both abilities by iteration, as the paper's tables: the actor (answer accuracy) and
    the judge (pairwise accuracy on held-out response pairs)."""
    if metrics.get("chat"):
        return _render_self_rewarding_chat(metrics)
    rows = metrics["rows"]
    head = ["model", "answer accuracy %", "judge pairwise accuracy %", "judge ties %", "new prompts", "pairs",
            "chosen truly better %"]
    body = []
    for r in rows:
        pairs = r.get("pairs", {})
        body.append([r["label"], _pct(r["test"]["accuracy"]), _pct(r["judge_accuracy"]), _pct(r["judge_ties"]),
                     str(r.get("prompts", {}).get("kept", "")), str(pairs.get("pairs", "")),
                     _pct(pairs["chosen_truly_better"]) if "chosen_truly_better" in pairs else ""])
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body) + "</table>"
    xs = list(range(1, len(rows) + 1))
    chart = line_chart("Both abilities by model (M1 = SFT, then one per iteration)", xs, [
        ("answer accuracy", [r["test"]["accuracy"] for r in rows], "#1f77b4"),
        ("judge accuracy", [r["judge_accuracy"] for r in rows], "#d62728"),
    ], x_label="model M1, M2, ...")
    title = f"selftrain: {html.escape(str(metrics['name']))} (seed {metrics['seed']})"
    return _page(title, f"""<p>Self-Rewarding: answer accuracy is greedy decoding on the held-out test set, graded exactly;
judge accuracy is how often the model's own greedy judgement scores the better response of a
held-out pair higher (better: by the task's grader). "Chosen truly better": of the pairs the
model built from its own judgements, how many the grader agrees with.</p>
{table}
<div class="charts">{chart}</div>""")


def _render_self_rewarding_chat(metrics: dict[str, Any]) -> str:
    head = ["model", "self-judged score (0-5)", "M1-judged score (0-5)", "vs M1 (wins / losses / undecided)",
            "new prompts", "judgements (unreadable / finished)", "pairs", "DPO reward margin"]
    body = []
    for r in metrics["rows"]:
        vs, judged = r.get("vs_m1"), r.get("judge")
        body.append([r["label"], str(r.get("self_judged")), str(r.get("m1_judged")),
                     f"{vs['wins']} / {vs['losses']} / {vs['undecided']}" if vs else "",
                     str(r.get("prompts", {}).get("kept", "")),
                     f"{judged['judged']} ({judged['unreadable']} / {judged.get('finished', 0)})" if judged else "",
                     str(r.get("pairs", {}).get("pairs", "")), str(r.get("train", {}).get("reward_margin", ""))])
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body) + "</table>"
    return _page(f"selftrain: {html.escape(str(metrics['name']))} (seed {metrics['seed']})",
                 f"<p>Self-Rewarding on {html.escape(str(metrics['model']))}: each model's greedy answers to held-out "
                 "prompts, scored with the paper's additive 5-point prompt by the model itself and by M1, and judged "
                 "head to head against M1's answers by M1 (a win counts when both orders agree).</p>" + table)


def kv_table(rows: list[tuple[str, Any]]) -> str:
    """A two-column table of labels and values."""
    return "<table>" + "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.charts svg {{ margin: 0 1em 1em 0; }}
</style></head><body>
<h1>{title}</h1>
{body}
</body></html>
"""
