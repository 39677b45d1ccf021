"""The learning report as one self-contained HTML page: inline SVG charts and CSS, no script, no
network, so it opens anywhere it is copied to (object storage, an e-mail, a ticket).

Charts: the main metric's trend per model, a features x days drift heat map (with a row per drift
kind, performance degradation included, and one per degraded metric), the error histogram, an
alerts timeline per model and, per A/B test, the always-valid interval of (challenger - champion)
loss at every look. Above the charts, each model's baseline (what every finding is measured
against, and how to change it) and its current findings, each "since" the day its change started.

A multiclass model gets a per-class section on the report and on the Model health page alike: its
headline figures with their names and units, a per-class table, the confusion matrix as a small heat
map and the per-class recall trend. The heat map is a table, not a picture: every cell states its
count and its share of the actual class's rows (the shading only repeats the share, the diagonal is
also bold and framed), so it reads the same in a mailed copy, in print and to a screen reader, with
nothing shown only on hover. The recall trend is the trend chart with one line per class and a
legend naming each class with its latest recall; a single stored window is shown as values, since a
one-point line says nothing.
Pure: the report dict in, text out.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from ..core.tasks import STORED_METRICS
from ..core.types import ALERT_SEVERITY_NAMES as SEVERITY_ROWS
from .reporting import MULTICLASS_FIGURES, PER_CLASS_FIGURES

SEVERITY_COLOURS = {"none": "#dcefdc", "low": "#fff3b0", "medium": "#ffc46b", "high": "#f07850",
                    "critical": "#b3202a", "insufficient_data": "#eeeeee", None: "#fafafa"}
MAIN_METRICS = ("mape", "mae", "roc_auc", "log_loss")
# Line colours of a chart's series (the first is the single-series trend's), distinct in greyscale too.
SERIES_COLOURS = ("#3068b8", "#d9771e", "#2e8b57", "#b3202a", "#7b4fa0", "#8c6d31", "#e377c2", "#555555")
HEAT_RGB = (31, 79, 156)  # the confusion matrix's full shade (a row share of 100 %); white at 0 %
DAILY_DAG = "self_learning_daily"
BASELINE_HINT = (f"To change it: trigger {DAILY_DAG} with “Pin the baseline: start” and “end” (params baseline_start, "
                 "baseline_end), or from the serving client store.set_baseline(model, start, end) — "
                 "store.baseline_from_champion(model) for the champion's training window.")
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:24px}
svg.chart{background:#fff;border:1px solid #eee}.muted{color:#777}.legend span{display:inline-block;
padding:1px 8px;margin-right:4px;border:1px solid #ddd}
table.confusion td{min-width:56px;text-align:center}table.confusion caption{caption-side:top;text-align:left;color:#555;
max-width:640px}
"""


def render_learning_report(report: dict[str, Any], *, title: str = "Learning report") -> str:
    """The HTML page of a report built by ``reporting.learning_report``."""
    period = report["period"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>{escape(title)}: {_day(period['start'])} – {_day(period['end'])}</h1>",
             _legend()]
    for model in report["models"]:
        parts.append(_model_section(report, model))
    parts.append("<h2>A/B tests</h2>")
    tests = report.get("ab_test_conclusions") or []
    parts.extend(_ab_section(test) for test in tests)
    if not tests:
        parts.append("<p class='muted'>No A/B test ran in this period.</p>")
    parts.append("</body></html>")
    return "".join(parts)


def render_model_health(health: dict[str, Any], *, base_url: str = "") -> str:
    """The "Model health" page of a ``reporting.model_health`` snapshot: per model the champion,
    latest metrics with their daily trend, drift status, open alerts and running A/B tests, and
    links to the latest stored reports (served under ``base_url``/reports/<kind>)."""
    links = " · ".join(f"<a href='{escape(base_url)}/reports/{escape(kind)}' target='_blank' rel='noopener'>"
                       f"latest {escape(kind)} report ({_day(row['period_end'])})</a>"
                       for kind, row in health["latest_reports"].items())
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Model health</title>",
             f"<style>{STYLE}</style></head><body><h1>Model health</h1>",
             f"<p>{links or '<span class=muted>No learning report stored yet.</span>'}</p>", _legend()]
    for model in health["models"]:
        parts.append(_health_section(model))
    if not health["models"]:
        parts.append("<p class='muted'>No model is registered in the feedback store yet.</p>")
    parts.append("</body></html>")
    return "".join(parts)


def _health_section(model: dict[str, Any]) -> str:
    name = model["name"]
    window = f"window ending {_day(model['window_end'])}" if model["window_end"] else "no performance stored yet"
    out = [f"<h2 id='{escape(name)}' data-model='{escape(name)}'>{escape(name)}</h2>",
           f"<p>champion: <b>{escape(model['champion'] or 'none promoted yet')}</b> · "
           f"{escape(model['task_kind'].replace('_', ' '))} · {window}</p>",
           _baseline_block(model.get("baseline")),
           _current_table(model["current"]), "<div class='charts'>", _trend_chart(model["trend"], "day"), "</div>",
           _per_class_section(model.get("per_class"), model["trend"], "day", model["window_end"])]
    drift = "".join(
        f"<tr data-kind='{escape(kind)}'><td class='l'>{escape(kind.replace('_', ' '))}</td><td style='background:"
        f"{SEVERITY_COLOURS.get(check['severity'] if check['status'] == 'ok' else check['status'], '#eeeeee')}'>"
        f"{escape(check['severity'] if check['status'] == 'ok' else check['status'])}</td>"
        f"<td class='l'>{_flagged(check.get('findings'), check['affected_features'])}</td>"
        f"<td>{_day(check['window_end'])}</td></tr>"
        for kind, check in sorted(model["drift"].items()))
    out.append("<h3>Drift and degradation against the baseline</h3>" + (
        f"<table><tr><th class='l'>check</th><th>severity</th><th class='l'>features / metrics (since)"
        f"</th><th>window end</th></tr>{drift}</table>" if drift
        else "<p class='muted'>No drift check stored yet.</p>"))
    alerts = model["open_alerts"]
    items = "".join(f"<li><span style='background:{SEVERITY_COLOURS[a['severity']]}'>&nbsp;{escape(a['severity'])}"
                    f"&nbsp;</span> {_day(a['window_end'])} {escape(a['type'])}: {escape(a['summary'])}</li>"
                    for a in alerts[:10])
    more = f"<li class='muted'>and {len(alerts) - 10} more</li>" if len(alerts) > 10 else ""
    out.append(f"<h3>Open alerts ({len(alerts)})</h3>" + (f"<ul>{items}{more}</ul>" if alerts else ""))
    if model["ab_tests"]:
        out.append("<h3>Running A/B tests</h3>")
        out.extend(_ab_section(test) for test in model["ab_tests"])
    return "".join(out)


def _model_section(report: dict[str, Any], model: str) -> str:
    performance = report["performance"].get(model) or {}
    drift = report["drift_results"].get(model) or {}
    errors = report["error_distribution"].get(model) or {}
    period = report["period"]
    days = (datetime.fromisoformat(period["end"]) - datetime.fromisoformat(period["start"])).days
    step = {1: "day", 7: "week"}.get(days, f"{days} days")
    out = [f"<h2 id='{escape(model)}'>{escape(model)}</h2>",
           _baseline_block((report.get("baselines") or {}).get(model), drift),
           _current_table(performance.get("current") or {}),
           _per_class_section(performance.get("per_class"), performance.get("trend") or [], step, period["end"]),
           "<div class='charts'>", _trend_chart(performance.get("trend") or [], step),
           _histogram_chart(errors.get("histogram") or {}),
           _alerts_chart(report["alerts"].get(model) or [], drift.get("days") or []), "</div>",
           "<h3>Drift by day</h3>", _heat_map(drift)]
    patterns = report["systematic_error_patterns"].get(model) or []
    if patterns:
        rows = "".join(f"<tr><td class='l'>{escape(str(p['feature']))}={escape(str(p['bucket']))}</td>"
                       f"<td>{_num(p['deviation'])}</td><td>{_num(p.get('relative_effect'), pct=True)}</td>"
                       f"<td>{p['sample_count']}</td></tr>" for p in patterns[:10])
        out.append("<h3>Systematic errors</h3><table><tr><th class='l'>segment</th><th>mean error vs rest</th>"
                   f"<th>of MAE</th><th>rows</th></tr>{rows}</table>")
    importance = (report.get("feature_importance") or {}).get(model) or {}
    if importance.get("current"):
        trends = importance.get("trends") or {}
        rows = "".join(
            f"<tr><td class='l'>{escape(feature)}</td><td>{_num(row['weight'], pct=True)}</td>"
            f"<td>{_num(row['association'])}</td><td>{_num((row.get('permutation') or {}).get('mean'))}</td>"
            f"<td>{_num((trends.get(feature) or {}).get('slope_per_30_days'))}</td></tr>"
            for feature, row in sorted(importance["current"].items(), key=lambda item: -item[1]["weight"]))
        out.append("<h3>Feature importance</h3><table><tr><th class='l'>feature</th><th>weight</th>"
                   "<th>association</th><th>champion permutation</th><th>weight trend / 30 days</th></tr>"
                   f"{rows}</table>")
    requests = report["retraining_recommendations"].get(model) or []
    if requests:
        items = "".join(f"<li>{_day(r['window_end'])}: <b>{escape(r['status'])}</b>"
                        f"{' → ' + escape(r['result_version']) if r.get('result_version') else ''} — "
                        f"{escape('; '.join(r['reasons']))}</li>" for r in requests)
        out.append(f"<h3>Retraining</h3><ul>{items}</ul>")
    return "".join(out)


def _per_class_section(view: dict[str, Any] | None, trend: list[dict[str, Any]], step: str,
                       window_end: str | None) -> str:
    """A multiclass model's per-class section (see the module's docstring); empty for other kinds."""
    if not view:
        return ""
    when = f" (all versions, window ending {_day(window_end)})" if window_end else ""
    out = [f"<section class='per-class' data-per-class='{len(view['classes'])}'><h3>Per class{when}</h3>",
           _figures_table(view)]
    if view["status"] != "ok":
        out.append(f"<p class='muted'>{escape(view['status'].replace('_', ' '))}: "
                   f"{escape('; '.join(view['notes']))}</p>")
    else:
        out += [_class_table(view), _confusion_heat_map(view)]
    out += [_recall_trend(view["classes"], trend, step), _class_notes(view), "</section>"]
    return "".join(out)


def _figures_table(view: dict[str, Any]) -> str:
    """The headline figures, each with its name, value and unit; a figure not computable says why."""
    rows = []
    for name, figure in MULTICLASS_FIGURES.items():
        value = view["figures"].get(name)
        reason = view["unavailable"].get(name)
        shown = _num(value, pct=figure.share) if value is not None else "–"
        meaning = escape(figure.unit.format(k=view["top_k"]))
        if value is None and reason:
            meaning += f" <span class='muted'>— not computed: {escape(reason)}</span>"
        rows.append(f"<tr data-figure='{name}'><td class='l'>{escape(figure.title.format(k=view['top_k']))}</td>"
                    f"<td>{shown}</td><td class='l'>{meaning}</td></tr>")
    return ("<table class='figures'><tr><th class='l'>figure</th><th>value</th><th class='l'>unit / meaning</th>"
            f"</tr>{''.join(rows)}</table>")


def _class_table(view: dict[str, Any]) -> str:
    """Support, precision, recall and calibration error per class; an undefined figure says why."""
    head = "".join(f"<th>{escape(figure.title)}</th>" for figure in PER_CLASS_FIGURES.values())
    rows = "".join(
        f"<tr data-class='{escape(row['class'])}'><th class='l' scope='row'>{escape(row['class'])}</th>"
        + "".join(f"<td>{_class_figure(name, row[name])}</td>" for name in PER_CLASS_FIGURES) + "</tr>"
        for row in view["per_class"])
    units = "; ".join(f"{figure.title}: {figure.unit}" for figure in PER_CLASS_FIGURES.values())
    return (f"<table class='per-class-figures'><tr><th class='l' scope='col'>class</th>{head}</tr>{rows}</table>"
            f"<p class='muted'>{escape(units)}.</p>")


def _class_figure(name: str, value) -> str:
    """One per-class figure as shown: a count, a share in %, or why it is undefined for the class."""
    if name == "support":
        return str(value or 0)
    if value is None:
        return "– " + {"precision": "never served", "recall": "no actual row"}.get(name, "undefined")
    return _num(value, pct=PER_CLASS_FIGURES[name].share)


def _confusion_heat_map(view: dict[str, Any]) -> str:
    """The confusion matrix as a table: rows the actual class, columns the served one, each cell its
    count and its share of the row, shaded by that share; the diagonal (served right) bold and framed."""
    classes, matrix = view["classes"], view["confusion_matrix"]
    if not matrix:
        return ""
    head = "".join(f"<th scope='col'>{escape(c)}</th>" for c in classes)
    rows = []
    for i, (actual, counts) in enumerate(zip(classes, matrix, strict=True)):
        total = sum(counts)
        cells = []
        for j, count in enumerate(counts):
            share = count / total if total else None
            # the diagonal's marks are inline, as the shading: a mail client may drop the page's <style>
            diagonal = (" class='diagonal'", ";font-weight:bold;outline:2px solid #222;outline-offset:-3px") \
                if i == j else ("", "")
            cells.append(f"<td{diagonal[0]} style='{_heat(share)}{diagonal[1]}' "
                         f"data-share='{'' if share is None else f'{share:.4f}'}'>"
                         f"{count}<br><small>{_num(share, pct=True)}</small></td>")
        rows.append(f"<tr><th class='l' scope='row'>{escape(actual)}</th>{''.join(cells)}<td>{total}</td></tr>")
    caption = ("Confusion matrix: a row per actual class, a column per served class; each cell holds the rows "
               "and their share of the actual class's rows (the shading repeats that share, darker is more; "
               "the diagonal, served right, is bold and framed).")
    return (f"<table class='confusion' data-table='confusion-matrix'><caption>{caption}</caption>"
            f"<tr><th class='l' scope='col'>actual ↓ · served →</th>{head}<th scope='col'>actual rows</th></tr>"
            f"{''.join(rows)}</table>")


def _heat(share: float | None) -> str:
    """A heat-map cell's colours: white to the full shade by ``share``; black or white text, whichever
    contrasts more with the background (WCAG relative luminance), so every share stays legible."""
    if share is None:
        return "background:#fafafa;color:#555"
    rgb = [round(255 + (full - 255) * share) for full in HEAT_RGB]
    linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    text = "#fff" if 1.05 / (luminance + 0.05) > (luminance + 0.05) / 0.05 else "#000"
    return f"background:rgb({rgb[0]},{rgb[1]},{rgb[2]});color:{text}"


def _recall_trend(classes: list[str], trend: list[dict[str, Any]], step: str) -> str:
    """Recall by class over the stored windows: a line per class with a legend of each class's
    latest recall, or the values when one window is stored."""
    series = {c: [(t["window_end"], t["per_class_recall"][c]) for t in trend
                  if (t.get("per_class_recall") or {}).get(c) is not None] for c in classes}
    days = sorted({day for points in series.values() for day, _ in points})
    latest = "; ".join(f"<span style='display:inline-block;width:12px;height:4px;margin:0 4px 3px 0;"
                       f"background:{colour}'></span>{escape(c)} {_num(points[-1][1], pct=True) if points else '–'}"
                       for (c, points), colour in zip(series.items(), _series_colours(len(series)), strict=True))
    if len(days) < 2:
        when = f" on {_day(days[0])}" if days else ""
        return (f"<p class='series' data-chart='recall-by-class-values'>Recall by class{when} (one stored "
                f"window, no trend yet): {latest or 'none stored'}</p>")
    chart = _line_chart("recall-by-class", f"recall by class by {step}", series, bounds=(0.0, 1.0), pct=True)
    return (f"<div class='charts'>{chart}</div><p class='series'>Latest recall ({_day(days[-1])}): {latest}</p>")


def _class_notes(view: dict[str, Any]) -> str:
    """Classes without an actual row, actual labels outside the class list, and why a figure is missing."""
    items = []
    if view["absent_classes"]:
        items.append(f"Classes without an actual row in the window (no recall): "
                     f"{escape(', '.join(view['absent_classes']))}.")
    if view["unknown_actual"]:
        counts = ", ".join(f"{escape(label)} ({count})" for label, count in sorted(view["unknown_actual"].items()))
        items.append(f"Actual labels outside the model's class list, left out of every figure: {counts}; "
                     "extend the class list when the model serves them.")
    items.extend(f"{escape(name.replace('_', ' '))} not computed: {escape(reason)}."  # the others: in the table
                 for name, reason in view["unavailable"].items() if name not in MULTICLASS_FIGURES)
    return f"<ul class='class-notes'>{''.join(f'<li>{item}</li>' for item in items)}</ul>" if items else ""


def _baseline_block(baseline: dict[str, Any] | None, drift: dict[str, Any] | None = None) -> str:
    """The model's baseline (dates, source, pinned or provisional, how to change it) and, for a
    report, the findings of its latest day, each since the day its change started."""
    if baseline is None:
        text = ("<b>Baseline:</b> none yet: no check has had served data before its window to compare "
                f"against.</p><p class='muted'>{escape(BASELINE_HINT)}")
    else:
        text = f"<b>Baseline:</b> {_baseline_text(baseline)}"
        if baseline.get("note"):
            text += f" — {escape(str(baseline['note']))}"
        if baseline.get("provisional"):
            text += (" <b>Provisional</b>: the model has not yet served its default baseline's days; it is "
                     "pinned once they are complete.")
        measured = baseline.get("measured_against")
        if measured:
            text += f" The latest checks shown were measured against {_baseline_text(measured)}."
        text += f"</p><p class='muted'>{escape(BASELINE_HINT)}"
    out = f"<p class='baseline' data-baseline='{escape((baseline or {}).get('source') or 'none')}'>{text}</p>"
    findings = (drift or {}).get("findings") or []
    if drift and drift.get("findings_window_end"):
        items = "".join(f"<li><span style='background:{SEVERITY_COLOURS.get(f['severity'], '#eeeeee')}'>&nbsp;"
                        f"{escape(f['severity'])}&nbsp;</span> {escape(f['kind'].replace('_', ' '))}: "
                        f"<b>{escape(f['name'])}</b>{_since(f)}</li>" for f in findings)
        out += (f"<h3>Findings on {_day(drift['findings_window_end'])}</h3>"
                + (f"<ul class='findings'>{items}</ul>" if items
                   else "<p class='muted'>Nothing flagged against the baseline.</p>"))
    return out


def _baseline_text(baseline: dict[str, Any]) -> str:
    state = "provisional" if baseline.get("provisional") else ("pinned" if baseline.get("stored", True) else "")
    who = f", set by {escape(str(baseline['set_by']))}" if baseline.get("set_by") and baseline.get("set_at") else ""
    when = f" on {_day(baseline['set_at'])}" if baseline.get("set_at") else ""
    promotion = {"move": "; a promotion moves it", "keep": "; kept on promotion"}.get(baseline.get("on_promotion"), "")
    return (f"<span class='baseline-dates'>{_day(baseline['start'])} → {_day(baseline['end'])}</span> "
            f"(end exclusive; {escape(str(baseline.get('source', '?')).replace('_', ' '))}"
            f"{', ' + state if state else ''}{who}{when}{promotion})")


def _since(finding: dict[str, Any]) -> str:
    return f" since {escape(finding['since'])}" if finding.get("since") else ""


def _flagged(findings: list[dict[str, Any]] | None, affected: list[str]) -> str:
    """The flagged features / metrics / checks of a drift kind, each with its "since"."""
    if findings is None:  # a snapshot of a report stored before findings
        return escape(", ".join(affected))
    return ", ".join(f"{escape(f['name'])}{_since(f)}" for f in findings)


def _current_table(current: dict[str, dict[str, Any]]) -> str:
    if not current:
        return "<p class='muted'>No performance stored for this period.</p>"
    metrics = [m for m in STORED_METRICS
               if any(m in row for row in current.values())]
    head = "".join(f"<th>{m.upper()}</th>" for m in metrics)
    rows = "".join(
        f"<tr><td class='l'>{'all versions' if version == '*' else escape(version)}</td><td>{row['sample_count']}</td>"
        f"<td>{_num(row['label_coverage'], pct=True)}{' (provisional)' if row['provisional'] else ''}</td>"
        + "".join(f"<td>{_num(row.get(m))}</td>" for m in metrics) + "</tr>" for version, row in current.items())
    return f"<table><tr><th class='l'>version</th><th>labelled</th><th>coverage</th>{head}</tr>{rows}</table>"


def _trend_chart(trend: list[dict[str, Any]], step: str = "week", width: int = 340, height: int = 180) -> str:
    metric = next((m for m in MAIN_METRICS if any(m in t for t in trend)), None)
    points = [(t["window_end"], t[metric]) for t in trend if metric and t.get(metric) is not None]
    title = f"{metric.upper() if metric else 'metric'} by {step}"
    return _line_chart("trend", title, {metric or "metric": points}, width=width, height=height)


def _line_chart(kind: str, title: str, series: dict[str, list[tuple[str, float]]], *, width: int = 340,
                height: int = 180, bounds: tuple[float, float] | None = None, pct: bool = False) -> str:
    """A line per series over the days any series has a point (``bounds``: the y range, else the
    values'); each point names its day and value in a tooltip, the axes their range and days."""
    body = [f"<text x='10' y='16' font-size='12'>{escape(title)}</text>"]
    days = sorted({day for points in series.values() for day, _ in points})
    if not days:
        body.append("<text x='10' y='90' font-size='12' fill='#777'>no data</text>")
        return _svg(kind, width, height, body)
    low, high = bounds or (min(v for points in series.values() for _, v in points),
                           max(v for points in series.values() for _, v in points))
    span = (high - low) or abs(high) or 1.0
    column = {day: 40 + i * (width - 60) / max(1, len(days) - 1) for i, day in enumerate(days)}
    for (name, points), colour in zip(series.items(), _series_colours(len(series)), strict=True):
        xy = [(column[day], height - 30 - (value - low) / span * (height - 60)) for day, value in points]
        named = f"{escape(name)} " if len(series) > 1 else ""
        if len(xy) > 1:
            body.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' data-series='{escape(name)}' "
                        "points='" + " ".join(f"{a:.1f},{b:.1f}" for a, b in xy) + "'/>")
        body.extend(f"<circle cx='{a:.1f}' cy='{b:.1f}' r='3' fill='{colour}'><title>{named}{_day(d)}: "
                    f"{_num(v, pct=pct)}</title></circle>" for (a, b), (d, v) in zip(xy, points, strict=True))
    body.append(f"<text x='4' y='{height - 26}' font-size='10'>{_num(low, pct=pct)}</text>"
                f"<text x='4' y='34' font-size='10'>{_num(high, pct=pct)}</text>"
                f"<text x='40' y='{height - 8}' font-size='10'>{_day(days[0])}</text>"
                f"<text x='{width - 80}' y='{height - 8}' font-size='10'>{_day(days[-1])}</text>")
    return _svg(kind, width, height, body)


def _series_colours(count: int) -> list[str]:
    return [SERIES_COLOURS[i % len(SERIES_COLOURS)] for i in range(count)]


def _histogram_chart(histogram: dict[str, list[float]], width: int = 340, height: int = 180) -> str:
    counts, edges = histogram.get("counts") or [], histogram.get("edges") or []
    body = ["<text x='10' y='16' font-size='12'>error (predicted − actual)</text>"]
    if not counts:
        body.append("<text x='10' y='90' font-size='12' fill='#777'>no data</text>")
    else:
        top = max(counts) or 1
        bar = (width - 40) / len(counts)
        for i, count in enumerate(counts):
            h = count / top * (height - 60)
            body.append(f"<rect x='{20 + i * bar:.1f}' y='{height - 30 - h:.1f}' width='{max(bar - 1, 1):.1f}' "
                        f"height='{h:.1f}' fill='#7a9cc6'><title>{_num(edges[i])} .. {_num(edges[i + 1])}: "
                        f"{count}</title></rect>")
        body.append(f"<text x='20' y='{height - 12}' font-size='10'>{_num(edges[0])}</text>"
                    f"<text x='{width - 70}' y='{height - 12}' font-size='10'>{_num(edges[-1])}</text>")
    return _svg("errors", width, height, body)


def _alerts_chart(alerts: list[dict[str, Any]], days: list[str], width: int = 340, height: int = 180) -> str:
    body = ["<text x='10' y='16' font-size='12'>alerts by day and severity</text>"]
    if not days:
        return _svg("alerts", width, height, body)
    column = {day: i for i, day in enumerate(days)}
    step = (width - 90) / max(1, len(days) - 1)
    for r, severity in enumerate(SEVERITY_ROWS):
        y = height - 40 - r * 30
        body.append(f"<text x='4' y='{y + 4}' font-size='10'>{severity}</text>")
        stacked: dict[int, int] = {}
        for alert in alerts:
            i = column.get(alert["window_end"])
            if alert["severity"] != severity or i is None:
                continue
            k = stacked[i] = stacked.get(i, 0) + 1
            opacity = 1.0 if alert["status"] == "open" else 0.35
            body.append(f"<circle cx='{70 + i * step + (k - 1) * 3:.1f}' cy='{y}' r='5' opacity='{opacity}' "
                        f"fill='{SEVERITY_COLOURS[severity]}' stroke='#444'><title>{escape(alert['type'])} "
                        f"({escape(alert['status'])}): {escape(alert['summary'])}</title></circle>")
    body.append(f"<text x='70' y='{height - 8}' font-size='10'>{_day(days[0])}</text>"
                f"<text x='{width - 80}' y='{height - 8}' font-size='10'>{_day(days[-1])}</text>")
    return _svg("alerts", width, height, body)


def _heat_map(drift: dict[str, Any]) -> str:
    days = drift.get("days") or []
    rows = [(name, drift["features"][name]) for name in drift.get("features", {})]
    rows += [(kind.replace("_", " "), drift.get(kind) or [None] * len(days))
             for kind in ("prediction_drift", "concept_drift", "performance_degradation")]
    rows += [(f"performance: {name}", severities) for name, severities in (drift.get("metrics") or {}).items()]
    cell, label = 34, 150
    width, height = label + cell * len(days) + 10, 30 + 20 * len(rows)
    body = [f"<text x='{label + i * cell + 2}' y='14' font-size='10'>{day[5:10]}</text>" for i, day in enumerate(days)]
    for r, (name, severities) in enumerate(rows):
        y = 22 + r * 20
        body.append(f"<text x='4' y='{y + 13}' font-size='11'>{escape(name)}</text>")
        for i, severity in enumerate(severities):
            body.append(f"<rect x='{label + i * cell}' y='{y}' width='{cell - 2}' height='18' "
                        f"fill='{SEVERITY_COLOURS.get(severity, '#eeeeee')}'><title>{escape(name)} "
                        f"{_day(days[i])}: {escape(str(severity or 'no result'))}</title></rect>")
    missing = drift.get("missing_days") or []
    note = f"<p class='muted'>No daily results for {', '.join(map(_day, missing))}.</p>" if missing else ""
    return _svg("drift-heatmap", width, height, body) + note


def _ab_section(test: dict[str, Any], width: int = 520) -> str:
    looks = [look for look in test.get("looks") or [] if look.get("ci_low") is not None]
    head = (f"<h3>{escape(test['model'])}: {escape(test['champion_version'])} (champion) vs "
            f"{escape(test['challenger_version'])} (challenger) — {escape(test['status'])}"
            f"{', ' + escape(test['decision']) if test.get('decision') else ''}</h3>"
            f"<p>{escape('; '.join(test.get('reasons') or []))}</p>"
            + (f"<p class='muted'>{escape(test['plan_summary'])}</p>" if test.get("plan_summary") else ""))
    height = 40 + 24 * max(1, len(looks))
    metric = escape(test.get("metric") or "loss")
    body = [f"<text x='10' y='14' font-size='12'>challenger − champion {metric}, always-valid interval per look</text>"]
    if looks:
        bound = max(max(abs(look["ci_low"]), abs(look["ci_high"])) for look in looks) or 1.0
        scale = (width - 180) / (2 * bound)
        zero = 150 + bound * scale
        body.append(f"<line x1='{zero:.1f}' y1='22' x2='{zero:.1f}' y2='{height - 6}' stroke='#999' "
                    "stroke-dasharray='3'/>")
        for i, look in enumerate(looks):
            y = 34 + i * 24
            x1, x2 = zero + look["ci_low"] * scale, zero + look["ci_high"] * scale
            colour = "#2e8b57" if look["ci_high"] < 0 else ("#b3202a" if look["ci_low"] > 0 else "#3068b8")
            body.append(f"<text x='4' y='{y + 4}' font-size='10'>{_day(look['as_of'])}</text>"
                        f"<line x1='{x1:.1f}' y1='{y}' x2='{x2:.1f}' y2='{y}' stroke='{colour}' stroke-width='4'/>"
                        f"<circle cx='{zero + look['difference'] * scale:.1f}' cy='{y}' r='4' fill='{colour}'>"
                        f"<title>{_num(look['difference'])} [{_num(look['ci_low'])}, {_num(look['ci_high'])}]"
                        "</title></circle>")
    else:
        body.append("<text x='10' y='40' font-size='12' fill='#777'>not enough outcomes yet</text>")
    return head + _svg("ab-test", width, height, body)


def _legend() -> str:
    spans = "".join(f"<span style='background:{SEVERITY_COLOURS[s]}'>{s}</span>" for s in ("none", *SEVERITY_ROWS))
    return f"<p class='legend'>severity: {spans}</p>"


def _svg(kind: str, width: int, height: int, body: list[str]) -> str:
    return (f"<svg class='chart' data-chart='{kind}' xmlns='http://www.w3.org/2000/svg' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}'>{''.join(body)}</svg>")


def _num(value, *, pct: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" if pct else f"{value:.4g}"


def _day(value: str) -> str:
    return escape(datetime.fromisoformat(value).strftime("%Y-%m-%d"))
