"""The charts of the learning report and the Model health page, drawn by matplotlib as inline SVG.

Why a plotting library: the hand-drawn charts stretched the y-axis between a series' minimum and
maximum with no zero, so a 0.7-point change of MAPE looked like a cliff, drew no limit or baseline,
and drew a single window as a chart. matplotlib gives real ticks and labelled axes; here every metric
axis starts at zero (or spans the metric's natural range, e.g. ROC AUC 0.5-1, stated on the axis),
carries its unit, and draws the model's limit and its baseline value as labelled lines.

Why inline SVG: the pages are self-contained (stored in object storage, mailed, served under a CSP
that allows no request), so each chart is an ``<svg>`` element in the page. Text stays text
(``svg.fonttype`` 'none': no glyph outlines, no font file), so the chart is small and searchable.
What a chart shows is also written beside it as text by the page (``report_html``): a mail client
may drop the SVG, and a hover tooltip never reaches paper.

Why imported lazily: the DAG files import the operators, which import this package; matplotlib is
imported inside the functions, only when a page is rendered (``tests/test_layout.py`` guards it).
A chart costs about 20-40 ms to draw; a page of four models draws about a dozen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from html import escape

# Line colours of a chart's series (the first is the single-series trend's), distinct in greyscale too.
SERIES_COLOURS = ("#3068b8", "#d9771e", "#2e8b57", "#b3202a", "#7b4fa0", "#8c6d31", "#e377c2", "#555555")
REFERENCE_STYLES = {"limit": {"color": "#b3202a", "linestyle": "--"},
                    "baseline": {"color": "#555555", "linestyle": ":"}}
REFERENCE_COLOUR, CURRENT_COLOUR = "#9bb7d9", "#d9771e"
SIZE = (4.6, 2.6)  # inches: 331 x 187 pt, two charts side by side in the page's 1100 px
_ids = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class Reference:
    """A horizontal line drawn across a chart: a ``limit`` (the retrain limit) or a ``baseline``
    value (the metric on the pinned baseline), named in the legend with its value."""

    label: str
    value: float
    kind: str = "limit"


def line_chart(kind: str, title: str, series: Mapping[str, Sequence[tuple[str, float]]], *, y_label: str,
               axis: tuple[float | None, float | None] = (0.0, None), references: Sequence[Reference] = (),
               share: bool = False, shown: Callable[[float], str] | None = None) -> str:
    """A line per series over ISO-dated points. The y-axis spans ``axis`` (None: to the data),
    stretched only to show a value or a reference outside it; ``share``: values are 0-1 shares,
    drawn and shown in %; ``shown`` formats a value in the legend and the empty state (default:
    4 significant digits, or % for a share). Fewer than two dated points: ``empty_state``."""
    shown = shown or (lambda value: _number(value, share=share))
    days = sorted({day for points in series.values() for day, _ in points})
    if len(days) < 2:
        return empty_state(kind, title, series, shown=shown)
    scale = 100.0 if share else 1.0
    values = [v for points in series.values() for _, v in points] + [r.value for r in references]
    low = min(values) if axis[0] is None else min(axis[0], *values)
    high = max(values) if axis[1] is None else max(axis[1], *values)
    pad = (high - low) * 0.06 or abs(high) * 0.1 or 1.0
    with _drawing() as (figure, ax):
        for i, ((name, points), colour) in enumerate(zip(series.items(), _colours(len(series)), strict=True)):
            if points:
                line, = ax.plot([_date(day) for day, _ in points], [v * scale for _, v in points], marker="o",
                                markersize=3, linewidth=1.8, color=colour, label=name if len(series) > 1 else None)
                line.set_gid(f"series-{i}")
        for reference in references:
            ax.axhline(reference.value * scale, linewidth=1.2, **REFERENCE_STYLES[reference.kind],
                       label=f"{reference.label}: {shown(reference.value)}")
        # a bound of the metric's range is the axis' end; a value past it or a data end gets a margin
        ax.set_ylim((low if axis[0] == low else low - pad) * scale, (high if axis[1] == high else high + pad) * scale)
        ax.set_ylabel(y_label)
        ax.set_title(title)
        _date_axis(ax, days)
        if len(series) > 1 or references:
            ax.legend(loc="best")
        return _svg(figure, kind, title, series_names=list(series))


def empty_state(kind: str, title: str, series: Mapping[str, Sequence[tuple[str, float]]], *,
                shown: Callable[[float], str] | None = None, nothing: str = "nothing stored yet") -> str:
    """What stands in for a chart of fewer than two windows: the value of the one stored window,
    or that none is stored; a one-point line says nothing about a trend."""
    shown = shown or _number
    points = [(name, day, value) for name, pts in series.items() for day, value in pts]
    if not points:
        text = escape(nothing)
    else:
        named = len(series) > 1
        text = "one stored window, no trend yet: " + ", ".join(
            f"{escape(name) + ' ' if named else ''}{escape(shown(value))} ({_day(day)})" for name, day, value in points)
    return f"<p class='chart-empty' data-chart='{escape(kind)}-empty'><b>{escape(title)}</b>: {text}.</p>"


def bar_chart(kind: str, title: str, labels: Sequence[str], groups: Mapping[str, Sequence[float]], *,
              x_label: str, y_label: str, share: bool = False, edges: Sequence[float] | None = None,
              ordinal: bool = False) -> str:
    """Bars per label, one bar per group side by side (a feature's reference and current windows,
    or the one group of the error histogram); ``share``: values are 0-1 shares drawn in %.
    ``edges``: a numeric binning (len(labels) + 1 edges) drawn as adjacent bins on a real x-axis,
    or with ``ordinal`` as equal-width bins with some edges as tick labels (bins cut at quantiles);
    else the labels are categories. The y-axis starts at zero. Nothing to draw: ``empty_state``."""
    if not labels or not any(any(values) for values in groups.values()):
        return empty_state(kind, title, {})
    scale = 100.0 if share else 1.0
    count = len(groups)
    crowded = edges is None and len(labels) > 4
    with _drawing(bottom=0.9 if crowded else 0.45) as (figure, ax):
        positions = list(range(len(labels) + 1)) if ordinal and edges is not None else edges
        for i, ((name, values), colour) in enumerate(zip(groups.items(), _group_colours(count), strict=True)):
            heights = [v * scale for v in values]
            if positions is not None:
                widths = [(b - a) / count for a, b in itertools.pairwise(positions)]
                lefts = [a + w * i for a, w in zip(positions, widths, strict=False)]
                ax.bar(lefts, heights, width=widths, align="edge", color=colour, label=name, edgecolor="white",
                       linewidth=0.3)
            else:
                width = 0.8 / count
                ax.bar([j - 0.4 + width * (i + 0.5) for j in range(len(labels))], heights, width=width, color=colour,
                       label=name)
        if ordinal and edges is not None:
            ticks = sorted({0, len(labels), *range(0, len(labels), max(1, len(labels) // 4))})
            ax.set_xticks(ticks, [f"{edges[t]:.3g}" for t in ticks])
        elif edges is None:
            ax.set_xticks(range(len(labels)), [_short(label) for label in labels], rotation=30 if crowded else 0,
                          ha="right" if crowded else "center")
        ax.set_ylim(bottom=0)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title)
        if count > 1:
            ax.legend()
        return _svg(figure, kind, title, series_names=[])


def timeline_chart(kind: str, title: str, days: Sequence[str], rows: Sequence[str],
                   points: Sequence[tuple[str, str, bool]], *, colours: Mapping[str, str]) -> str:
    """Dots per day on one row per category (a severity): ``points`` are (day, row, muted), a
    muted dot drawn hollow; the legend names both kinds of dot. No day: ``empty_state``."""
    if not days:
        return empty_state(kind, title, {})
    with _drawing(left=0.75, top=0.6) as (figure, ax):
        for muted in (False, True):
            chosen = [(_date(day), rows.index(row), colours[row]) for day, row, hollow in points
                      if hollow is muted and row in rows]
            if chosen:
                xs, ys, fills = zip(*chosen, strict=True)
                ax.scatter(xs, ys, s=40, linewidths=1.2, zorder=3, facecolors="none" if muted else fills,
                           edgecolors=fills if muted else "#444444",
                           label="suppressed repeat (hollow)" if muted else "alert raised (filled)")
        ax.set_yticks(range(len(rows)), list(rows))
        ax.set_ylim(-0.6, len(rows) - 0.4)
        first, last = _date(days[0]), _date(days[-1])
        margin = max((last - first) / 20, timedelta(hours=12))
        ax.set_xlim(first - margin, last + margin)
        ax.set_ylabel("severity")
        ax.set_title(title, pad=16)
        _date_axis(ax, list(days))
        if points:
            ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, borderaxespad=0.2)
        return _svg(figure, kind, title, series_names=[])


def interval_chart(kind: str, title: str, rows: Sequence[tuple[str, float, float, float]], *, x_label: str,
                   nothing: str = "nothing stored yet") -> str:
    """One horizontal interval per row (label, estimate, low, high) around a dashed zero line:
    green entirely below zero, red entirely above, blue across it. No row: ``empty_state``
    saying ``nothing``."""
    if not rows:
        return empty_state(kind, title, {}, nothing=nothing)
    with _drawing(height=1.1 + 0.28 * len(rows), left=0.9) as (figure, ax):
        for i, (_, estimate, low, high) in enumerate(rows):
            colour = "#2e8b57" if high < 0 else ("#b3202a" if low > 0 else "#3068b8")
            ax.plot([low, high], [i, i], linewidth=4, color=colour, solid_capstyle="butt")
            ax.plot([estimate], [i], marker="o", color=colour)
        bound = max(max(abs(low), abs(high)) for _, _, low, high in rows) or 1.0
        ax.axvline(0, color="#999999", linestyle="--", linewidth=1)
        ax.set_xlim(-bound * 1.1, bound * 1.1)
        ax.set_yticks(range(len(rows)), [label for label, *_ in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel(x_label)
        ax.set_title(title)
        return _svg(figure, kind, title, series_names=[])


STYLE = {"svg.fonttype": "none", "font.family": ["DejaVu Sans", "sans-serif"], "font.size": 8, "axes.titlesize": 9,
         "axes.titlelocation": "left", "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
         "grid.color": "#eeeeee", "axes.axisbelow": True, "svg.hashsalt": None, "legend.fontsize": 7,
         "legend.frameon": False}


_DRAWING = threading.Lock()


@contextlib.contextmanager
def _drawing(height: float = SIZE[1], *, left: float = 0.6, bottom: float = 0.45, top: float = 0.3):
    """A figure's axes under the charts' style, with fixed margins in inches (a layout engine
    doubled the drawing time). A ``Figure`` made without pyplot: no GUI backend and no global
    figure registry. One chart at a time per process: the style is matplotlib's global rcParams,
    read again when the figure is saved, and the api-server renders pages in threads (two pages
    at once drew one chart with the default style, its text as glyph outlines)."""
    import matplotlib
    from matplotlib.figure import Figure

    with _DRAWING, matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(SIZE[0], height))
        figure.subplots_adjust(left=left / SIZE[0], right=1 - 0.12 / SIZE[0], bottom=bottom / height,
                               top=1 - top / height)
        yield figure, figure.subplots()


def _svg(figure, kind: str, title: str, *, series_names: Sequence[str]) -> str:
    """The figure as an ``<svg>`` element (no XML prolog, no metadata, no xlink) marked with
    ``data-chart`` and an accessible name, each series' group with ``data-series``."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, count=1, flags=re.S)
    # SVG 2's plain href: no xlink namespace to declare (the page is HTML; nothing names a URL)
    svg = svg.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "", 1).replace("xlink:href=", "href=")
    number = next(_ids)
    for i, name in enumerate(series_names):  # gids are ours ("series-<i>"); made unique on the page
        svg = svg.replace(f'<g id="series-{i}">', f'<g id="c{number}-series-{i}" data-series="{escape(name)}">', 1)
    return svg.replace("<svg ", f'<svg class="chart" data-chart="{escape(kind)}" role="img" '
                                f'aria-label="{escape(title)}" ', 1)


def _date_axis(ax, days: Sequence[str]) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=2, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    ax.set_xlabel(f"window end (UTC), {_day(days[0])[:4]}" if days[0][:4] == days[-1][:4] else "window end (UTC)")


def _colours(count: int) -> list[str]:
    return [SERIES_COLOURS[i % len(SERIES_COLOURS)] for i in range(count)]


def _group_colours(count: int) -> list[str]:
    return [REFERENCE_COLOUR, CURRENT_COLOUR][:count] if count <= 2 else _colours(count)


def _date(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=None)


def _day(day: str) -> str:
    return datetime.fromisoformat(day).strftime("%Y-%m-%d")


def _short(label: str, length: int = 14) -> str:
    return label if len(label) <= length else label[:length - 1] + "…"


def _number(value: float, *, share: bool = False) -> str:
    return f"{value:.1%}" if share else f"{value:.4g}"
