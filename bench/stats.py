"""Medians and spreads: every figure is reported as a median with p25-p75 (and min-max)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summary(values: Sequence[float], unit: str = "s", digits: int = 3) -> dict[str, Any]:
    """median, p25, p75, p95, min, max and n of `values`, rounded."""
    values = [float(v) for v in values]

    def r(x: float) -> float | None:
        return None if math.isnan(x) else round(x, digits)

    return {
        "unit": unit,
        "n": len(values),
        "median": r(percentile(values, 50)),
        "p25": r(percentile(values, 25)),
        "p75": r(percentile(values, 75)),
        "p95": r(percentile(values, 95)),
        "min": r(min(values)) if values else None,
        "max": r(max(values)) if values else None,
        "values": [round(v, digits) for v in values] if len(values) <= 60 else "omitted (n > 60)",
    }


def fmt(value: float | None, unit: str = "s") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        if abs(value) < 1:
            return f"{value * 1000:.0f} ms"
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit in {"x", "ratio"}:
        return f"{value:.2f}x"
    if unit == "/s":
        return f"{value:,.0f}/s" if value >= 100 else f"{value:.1f}/s"
    return f"{value:g} {unit}".strip()


def fmt_summary(s: dict[str, Any], spread: str = "iqr") -> str:
    """`median (p25-p75)` or, for few repeats, `median (min-max)`."""
    unit = s.get("unit", "s")
    if s.get("n", 0) == 0:
        return "-"
    if s["n"] == 1:
        return fmt(s["median"], unit)
    if spread == "range" or s["n"] < 5:
        return f"{fmt(s['median'], unit)} ({fmt(s['min'], unit)}-{fmt(s['max'], unit)})"
    return f"{fmt(s['median'], unit)} (p25-p75 {fmt(s['p25'], unit)}-{fmt(s['p75'], unit)})"
