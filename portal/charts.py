"""Charts of the reports pages, drawn on the server as SVG with pygal: no JavaScript, no CDN,
nothing fetched by the browser but the image itself.

pygal puts a small configuration script in every chart for its optional tooltips; it is taken
out here, so a chart opened on its own or downloaded holds no script. Every chart has its data
as a table beside it on the page: the image is never the only way to read a figure.
"""

from __future__ import annotations

from typing import Any

import pygal
from pygal.style import Style

from tasks.disproportionality import Disproportionality
from tasks.trends import Figure

# GOV.UK colours, the first ones distinct for most kinds of colour blindness.
STYLE = Style(
    background="#ffffff", plot_background="#ffffff", foreground="#0b0c0c",
    foreground_strong="#0b0c0c", foreground_subtle="#505a5f",
    font_family="Arial, Helvetica, sans-serif", title_font_size=18, label_font_size=12,
    major_label_font_size=12, legend_font_size=13, value_font_size=12,
    colors=("#1d70b8", "#f47738", "#00703c", "#d4351c", "#4c2c92", "#f499be", "#85994b",
            "#505a5f", "#28a197", "#912b88"))
SVG_MEDIA = "image/svg+xml"
# How the SVG's own response is served: its inline styles, and nothing else.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _no_scripts(root: Any) -> Any:
    for parent in list(root.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.endswith("script"):
                parent.remove(child)
    return root


def _config(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "style": STYLE, "js": [], "width": 900, "height": 420,
            "legend_at_bottom": True, "legend_at_bottom_columns": 3, "truncate_legend": -1,
            "truncate_label": -1, "print_values": False,
            "no_data_text": "No data in the period", **extra}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def figure_svg(figure: Figure) -> bytes:
    """The figure's chart: stacked bars for counts over time, bars for categories, lines for
    timeliness and shares."""
    labels = [str(row[0]) for row in figure.rows]
    many = len(labels) > 24
    options = _config(figure.title, x_label_rotation=45 if many or len(labels) > 8 else 0,
                      y_title=figure.unit_of_measure, show_minor_x_labels=not many)
    kind = {"stacked": pygal.StackedBar, "line": pygal.Line}.get(figure.chart, pygal.Bar)
    if figure.chart == "bar" and len(figure.series) == 1 and len(labels) > 6:
        kind = pygal.HorizontalBar
        options.update(x_label_rotation=0, show_legend=False)
    chart = kind(**options)
    chart.add_xml_filter(_no_scripts)
    chart.x_labels = labels
    if many:
        chart.x_labels_major = labels[::max(1, len(labels) // 12)]
    for name in figure.chart_series:
        i = figure.columns.index(name)
        chart.add(name, [_number(row[i]) for row in figure.rows])
    rendered: bytes = chart.render()
    return rendered


def rri_svg(result: Disproportionality, stage: str) -> bytes:
    """Each group's relative rate (RRI) with its 95% interval, against the line at 1; a
    suppressed or undefined group is left without a point (the table says which)."""
    figures = next(s for s in result.stages if s.stage == stage)
    chart = pygal.Line(**_config(
        f"Relative rate index: {stage.replace('_', ' ')} (reference: "
        f"{result.reference_group or 'none'})", stroke=False, y_title="relative rate (RRI)",
        x_label_rotation=30 if len(figures.groups) > 5 else 0, dots_size=5,
        include_x_axis=True))
    chart.add_xml_filter(_no_scripts)
    chart.x_labels = [g.group + (" (suppressed)" if g.suppressed else "")
                      for g in figures.groups]
    chart.add("RRI with 95% interval", [
        {"value": g.rri, "ci": {"low": g.ci_low, "high": g.ci_high}}
        if g.rri is not None and g.ci_low is not None and g.ci_high is not None
        else g.rri for g in figures.groups])
    chart.add("1: the reference group's rate", [1.0] * len(figures.groups),
              stroke=True, show_dots=False, stroke_style={"width": 2, "dasharray": "6, 4"})
    rendered: bytes = chart.render()
    return rendered
