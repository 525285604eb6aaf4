"""Shared helpers for the pages a person reads (`RUN/report.html`): a line chart, tables, the
page itself. A leaf: each method renders its own page with these (`Method.render`), and
`selftrain.runs.publish` writes it.
"""

from __future__ import annotations

from html import escape
from typing import Any

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
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{escape(title)}">',
        f'<text x="{ml}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i in range(6):
        y = i / 5
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{ml - 6}" y="{py(y) + 4:.1f}" font-size="11" text-anchor="end">{int(y * 100)}%</text>')
    for x in xs:
        parts.append(f'<text x="{px(x):.1f}" y="{mt + ph + 16}" font-size="11" text-anchor="middle">{x}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{h - 6}" font-size="11" text-anchor="middle">{escape(x_label)}</text>')
    legend_y = mt + 4
    for name, y, color in hlines:
        parts.append(
            f'<line x1="{ml}" x2="{ml + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="{color}" stroke-dasharray="5,4"/>'
        )
        parts.append(f'<line x1="{ml + pw + 10}" x2="{ml + pw + 30}" y1="{legend_y}" y2="{legend_y}" stroke="{color}" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{ml + pw + 34}" y="{legend_y + 4}" font-size="11">{escape(name)}</text>')
        legend_y += 16
    for name, ys, color in series:
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys) if y is not None)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in zip(xs, ys):
            if y is not None:
                parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"><title>{escape(name)}: {y:.1%}</title></circle>')
        parts.append(f'<line x1="{ml + pw + 10}" x2="{ml + pw + 30}" y1="{legend_y}" y2="{legend_y}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{ml + pw + 34}" y="{legend_y + 4}" font-size="11">{escape(name)}</text>')
        legend_y += 16
    parts.append("</svg>")
    return "\n".join(parts)


def pct(v: Any) -> str:
    """A fraction as a percent with one decimal; '' for a missing value.

    >>> pct(0.4567), pct(None)
    ('45.7', '')
    """
    return f"{v * 100:.1f}" if isinstance(v, (int, float)) else ""


def pct_cells(by_bucket: dict[str, float]) -> str:
    """`bucket:percent` cells for a terminal line.

    >>> pct_cells({"1": 0.5, "2": 0.25})
    '1: 50.0  2: 25.0'
    """
    return "  ".join(f"{b}:{v * 100:5.1f}" for b, v in by_bucket.items())


def table(head: list[str], rows: list[list[Any]]) -> str:
    """An HTML table; every cell escaped."""
    return "<table><tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in head) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows) + "</table>"


def kv_table(rows: list[tuple[str, Any]]) -> str:
    """A two-column table of labels and values."""
    return "<table>" + "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def page(title: str, body: str) -> str:
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
