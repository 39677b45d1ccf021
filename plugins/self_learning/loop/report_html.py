"""The learning report as one self-contained HTML page: inline SVG charts and CSS, no script, no
network, so it opens anywhere it is copied to (object storage, an e-mail, a ticket).

Charts (``loop.charts``, matplotlib): the main metric's trend per model on an axis from zero (or
the metric's natural range) with its retrain limit and its value on the baseline drawn, a features
x days drift heat map (with a row per drift kind, performance degradation included, and one per
degraded metric), the error histogram, per drifted feature its baseline-vs-current distribution,
the incident's severity by day and, per A/B test, the always-valid interval of (challenger -
champion) loss at every look. Fewer than two windows give their values as text, not a one-point
chart. Metrics carry human names and units (``reporting.METRIC_FIGURES``; MAPE and WAPE both in %).

What a chart shows is also written out as text next to it (the alerts with their summaries, the
incident's causes and checks, the A/B looks, a distribution's largest change): a mail client may
drop inline SVG, and nothing may live only in a hover tooltip. Above the charts, each model's
baseline (what every finding is measured against, and how to change it), its current findings,
each "since" the day its change started, and its incident (``loop.incidents``): since when, why,
and what the loop did (retrain request -> candidate -> A/B test -> outcome).

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

import itertools
from datetime import datetime
from html import escape
from typing import Any

from ..core.tasks import STORED_METRICS
from ..core.types import ALERT_SEVERITY_NAMES as SEVERITY_ROWS
from . import charts
from .figures import METRIC_FIGURES, MULTICLASS_FIGURES, PER_CLASS_FIGURES, Figure

SEVERITY_COLOURS = {"none": "#dcefdc", "low": "#fff3b0", "medium": "#ffc46b", "high": "#f07850",
                    "critical": "#b3202a", "insufficient_data": "#eeeeee", None: "#fafafa"}
MAIN_METRICS = ("mape", "mae", "roc_auc", "log_loss")
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
section.incident{border-left:4px solid #ddd;padding-left:12px}section.incident.open{border-color:#b3202a}
ul.involved{margin:0;padding-left:16px;text-align:left;font-size:12px}.chart-empty{color:#555}
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
        parts.append("<p class='muted'>No A/B test was running for these models at any time in this period "
                     "(as stored when the report was written).</p>")
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
           _current_table(model["current"]), "<div class='charts'>",
           _trend_chart(model["trend"], "day", model.get("references") or {}), "</div>",
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
    out.append(_distributions(model.get("distributions") or {}))
    alerts = model["open_alerts"]
    items = "".join(f"<li data-cause='{escape(a.get('cause', ''))}'>{_severity(a['severity'])} {_day(a['window_end'])} "
                    f"{escape(a['type'].replace('_', ' '))}: {escape(a['summary'])}{_open_since(a)}</li>"
                    for a in alerts[:10])
    more = f"<li class='muted'>and {len(alerts) - 10} more</li>" if len(alerts) > 10 else ""
    out.append(f"<h3>Open alerts ({len(alerts)} {'cause' if len(alerts) == 1 else 'causes'})</h3>"
               + (f"<ul class='open-alerts'>{items}{more}</ul>" if alerts else ""))
    if model.get("incident"):
        out.append(_incident_section(model["incident"]))
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
           "<div class='charts'>",
           _trend_chart(performance.get("trend") or [], step, performance.get("references") or {}),
           _histogram_chart(errors.get("histogram") or {}), "</div>",
           _alerts_list(report["alerts"].get(model) or []),
           "<h3>Drift by day</h3>", _heat_map(drift), _distributions(drift.get("distributions") or {})]
    incident = (report.get("incidents") or {}).get(model)
    if incident:
        out.append(_incident_section(incident))
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
    colours = [charts.SERIES_COLOURS[i % len(charts.SERIES_COLOURS)] for i in range(len(series))]
    latest = "; ".join(f"<span style='display:inline-block;width:12px;height:4px;margin:0 4px 3px 0;"
                       f"background:{colour}'></span>{escape(c)} {_num(points[-1][1], pct=True) if points else '–'}"
                       for (c, points), colour in zip(series.items(), colours, strict=True))
    if len(days) < 2:
        when = f" on {_day(days[0])}" if days else ""
        return (f"<p class='series' data-chart='recall-by-class-values'>Recall by class{when} (one stored "
                f"window, no trend yet): {latest or 'none stored'}</p>")
    chart = charts.line_chart("recall-by-class", f"Recall by class by {step}", series, y_label="recall (%)",
                              axis=(0.0, 1.0), share=True)
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
                        f"<b>{escape(_finding_name(f))}</b>{_since(f)}</li>" for f in findings)
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
    return ", ".join(f"{escape(_finding_name(f))}{_since(f)}" for f in findings)


def _finding_name(finding: dict[str, Any]) -> str:
    """A finding's feature or check as stored; a degraded metric by its name (MAE, ROC AUC)."""
    if finding["kind"] == "performance_degradation" and finding["name"] in METRIC_FIGURES:
        return METRIC_FIGURES[finding["name"]].short
    return finding["name"]


def _current_table(current: dict[str, dict[str, Any]]) -> str:
    """The window's metrics per version, each header its metric's name and unit."""
    if not current:
        return "<p class='muted'>No performance stored for this period.</p>"
    metrics = [m for m in STORED_METRICS
               if any(m in row for row in current.values())]
    head = "".join(f"<th title='{escape(_figure(m).title)}' data-metric='{m}'>{escape(_figure(m).header)}</th>"
                   for m in metrics)
    rows = "".join(
        f"<tr><td class='l'>{'all versions' if version == '*' else escape(version)}</td><td>{row['sample_count']}</td>"
        f"<td>{_num(row['label_coverage'], pct=True)}{' (provisional)' if row['provisional'] else ''}</td>"
        + "".join(f"<td>{escape(_figure(m).shown(row.get(m)))}</td>" for m in metrics) + "</tr>"
        for version, row in current.items())
    names = "; ".join(f"{_figure(m).short}: {_figure(m).title}, {_figure(m).unit}" for m in metrics)
    return (f"<table class='metrics'><tr><th class='l'>version</th><th>labelled rows</th><th>label coverage (%)</th>"
            f"{head}</tr>{rows}</table>" + (f"<p class='muted'>{escape(names)}.</p>" if metrics else ""))


def _figure(metric: str) -> Figure:
    return METRIC_FIGURES.get(metric) or Figure(metric.replace("_", " "), "")


def _trend_chart(trend: list[dict[str, Any]], step: str, references: dict[str, list[dict[str, Any]]]) -> str:
    """The model's main metric by window, with its retrain limit and its baseline value drawn."""
    metric = next((m for m in MAIN_METRICS if any(m in t for t in trend)), None)
    if metric is None:
        return charts.empty_state("trend", f"metric by {step}", {})
    figure = _figure(metric)
    points = [(t["window_end"], t[metric]) for t in trend if t.get(metric) is not None]
    lines = [charts.Reference(r["label"], r["value"], r["kind"]) for r in references.get(metric) or []]
    return charts.line_chart("trend", f"{figure.short or figure.title} by {step}", {metric: points},
                             y_label=figure.label, axis=figure.axis, references=lines, share=figure.share,
                             shown=figure.shown)


def _histogram_chart(histogram: dict[str, list[float]]) -> str:
    counts, edges = histogram.get("counts") or [], histogram.get("edges") or []
    labels = [f"{a:.3g}–{b:.3g}" for a, b in itertools.pairwise(edges)]
    return charts.bar_chart("errors", "Error distribution", labels, {"rows": counts}, edges=edges or None,
                            x_label="error: predicted − actual (target units)", y_label="labelled rows")


def _alerts_list(alerts: list[dict[str, Any]]) -> str:
    """The period's alerts as text: day, severity, type, status and summary; a suppressed alert
    (a repeat of a cause already alerted) is marked as one."""
    if not alerts:
        return "<h3>Alerts</h3><p class='muted'>No alert in this period.</p>"
    rows = "".join(
        f"<tr data-status='{escape(a['status'])}'><td>{_day(a['window_end'])}</td><td>{_severity(a['severity'])}</td>"
        f"<td class='l'>{escape(a['type'].replace('_', ' '))}</td><td class='l'>{escape(a['status'])}"
        f"{' (repeat of an alerted cause)' if a['status'] == 'suppressed' else ''}</td>"
        f"<td class='l'>{escape(a['summary'])}</td></tr>"
        for a in sorted(alerts, key=lambda a: a["window_end"]))
    return ("<h3>Alerts</h3><table class='alerts'><tr><th>day (window end)</th><th>severity</th><th class='l'>type</th>"
            f"<th class='l'>status</th><th class='l'>details</th></tr>{rows}</table>")


def _heat_map(drift: dict[str, Any]) -> str:
    """Severity per check and day as a table (a cell states its severity; the colour repeats it)."""
    days = drift.get("days") or []
    rows = [(name, drift["features"][name]) for name in drift.get("features", {})]
    rows += [(kind.replace("_", " "), drift.get(kind) or [None] * len(days))
             for kind in ("prediction_drift", "concept_drift", "performance_degradation")]
    rows += [(f"performance: {_figure(name).short or name}", severities)
             for name, severities in (drift.get("metrics") or {}).items()]
    head = "".join(f"<th scope='col'>{_day(day)[5:]}</th>" for day in days)
    body = "".join(
        f"<tr><th class='l' scope='row'>{escape(name)}</th>"
        + "".join(f"<td style='background:{SEVERITY_COLOURS.get(severity, '#eeeeee')};"
                  f"color:{'#fff' if severity == 'critical' else '#222'}'>"
                  f"{escape(_SHORT_SEVERITY.get(severity, str(severity)))}</td>" for severity in severities)
        + "</tr>" for name, severities in rows)
    missing = drift.get("missing_days") or []
    note = f"<p class='muted'>No daily results for {', '.join(map(_day, missing))}.</p>" if missing else ""
    return (f"<table class='heat' data-chart='drift-heatmap'><tr><th class='l' scope='col'>check · day (UTC)</th>"
            f"{head}</tr>{body}</table><p class='muted'>–: no result that day; insufficient: too little data "
            f"to judge.</p>{note}")


_SHORT_SEVERITY = {None: "–", "insufficient_data": "insufficient", "none": "none", "low": "low", "medium": "medium",
                   "high": "high", "critical": "critical"}


def _distributions(distributions: dict[str, Any]) -> str:
    """Per drifted feature, its baseline-vs-current distribution (shares of rows) and, as text,
    the rows compared and the bin that changed most."""
    if not distributions:
        return ""
    out = ["<h3>Drifted features: baseline vs current window</h3><div class='charts'>"]
    notes = []
    for name, dist in distributions.items():
        labels = dist.get("labels") or []
        totals = {side: sum(dist.get(side) or []) for side in ("reference", "current")}
        shares = {f"baseline ({dist['rows']['reference']} rows)" if side == "reference"
                  else f"current ({dist['rows']['current']} rows)":
                  [count / totals[side] if totals[side] else 0.0 for count in dist.get(side) or []]
                  for side in ("reference", "current")}
        x_label = {"numeric": "value (each bin: 5 % of the baseline's rows)", "values": "value"}.get(
            dist.get("kind"), "category")
        title = f"{name} ({dist.get('severity')}{', since ' + dist['since'] if dist.get('since') else ''})"
        out.append(f"<figure class='distribution' data-feature='{escape(name)}'>"
                   + charts.bar_chart("distribution", title, labels, shares, x_label=x_label,
                                      y_label="share of rows (%)", share=True, edges=dist.get("edges") or None,
                                      ordinal=True)
                   + "</figure>")
        notes.append(f"<li data-feature='{escape(name)}'>{_distribution_text(name, labels, shares, dist)}</li>")
    out.append(f"</div><ul class='distribution-notes'>{''.join(notes)}</ul>")
    return "".join(out)


def _distribution_text(name: str, labels: list[str], shares: dict[str, list[float]], dist: dict[str, Any]) -> str:
    reference, current = shares.values()
    text = (f"<b>{escape(name)}</b>: {dist['rows']['reference']} baseline rows, {dist['rows']['current']} current "
            f"rows")
    if labels and reference and current:
        i = max(range(len(labels)), key=lambda j: abs(current[j] - reference[j]))
        text += (f"; the largest change is in {escape(labels[i])}: {_num(reference[i], pct=True)} of the baseline's "
                 f"rows, {_num(current[i], pct=True)} of the current window's")
    if dist.get("beyond"):
        text += f"; {dist['beyond']} current rows outside the baseline's values"
    missing = dist.get("missing") or {}
    if missing.get("reference") or missing.get("current"):
        text += f"; missing: {missing.get('reference', 0)} baseline, {missing.get('current', 0)} current rows"
    return text + "."


def _incident_section(incident: dict[str, Any]) -> str:
    """Since when, why and what was done: the model's alert causes with their first and last day,
    severity by day and checks involved; the severity-over-time chart; and each retrain request
    followed to its candidate, A/B test and outcome."""
    causes, actions = incident.get("causes") or [], incident.get("actions") or []
    model = incident["model"]
    if not causes:
        return (f"<section class='incident' data-incident='{escape(model)}'><h3>Incident</h3>"
                "<p class='muted'>No alert in the last 30 days.</p></section>")
    state = "open" if incident["open"] else "no open alert"
    head = (f"<h3>Incident: {state} · first seen {_day(incident['first_seen'])} · last seen "
            f"{_day(incident['last_seen'])} · worst {_severity(incident['worst'])}</h3>")
    rows = "".join(
        f"<tr data-cause='{escape(c['key'])}'><td class='l'>{escape(c['title'])}</td><td>{_day(c['first_seen'])}</td>"
        f"<td>{_day(c['last_seen'])}</td><td>{c['days']}</td><td class='l'>{_severity_days(c['timeline'])}</td>"
        f"<td>{escape(c['status'])}</td><td class='l'>{escape(c['summary'])}"
        + (f"<ul class='involved'>{''.join(f'<li>{escape(line)}</li>' for line in c['involved'])}</ul>"
           if c["involved"] else "") + "</td></tr>" for c in causes)
    table = ("<table class='incident-causes'><tr><th class='l'>cause</th><th>first seen</th><th>last seen</th>"
             "<th>days alerted</th><th class='l'>severity by day</th><th>status</th>"
             f"<th class='l'>what was found (features, metrics, checks)</th></tr>{rows}</table>")
    days = sorted({day for day, _, _ in incident["timeline"]})
    chart = charts.timeline_chart("incident-severity", "Alert severity by day", days, list(SEVERITY_ROWS),
                                  incident["timeline"], colours=SEVERITY_COLOURS)
    done = "".join(f"<li data-request='{escape(a['request_id'])}'>{_action_text(a)}</li>" for a in actions)
    return (f"<section class='incident{' open' if incident['open'] else ''}' data-incident='{escape(model)}'>{head}"
            f"{table}<div class='charts'>{chart}</div><h3>What was done</h3>"
            + (f"<ol class='actions'>{done}</ol>" if done
               else "<p class='muted'>No retrain request since the first alert.</p>") + "</section>")


def _severity_days(timeline: list) -> str:
    return ", ".join(f"{_day(day)[5:]} {escape(severity)}{' (suppressed)' if status == 'suppressed' else ''}"
                     for day, severity, status in timeline)


def _action_text(action: dict[str, Any]) -> str:
    """retrain request -> candidate -> A/B test -> outcome, as far as the chain got."""
    causes = ", ".join(f"{escape(cause)} ({escape(severity)})" for cause, severity in action["causes"].items())
    steps = [f"{_day(action['window_end'])}: retrain request <b>{escape(action['status'])}</b> for {causes}"]
    if action.get("candidate"):
        candidate = action["candidate"]
        steps.append(f"candidate <b>{escape(candidate['version'])}</b>"
                     f"{' (' + escape(candidate['status']) + ')' if candidate.get('status') else ''}")
    if action.get("ab_test"):
        test = action["ab_test"]
        steps.append(f"A/B test {escape(test['test_id'])} <b>{escape(test['status'])}</b> ({test['looks']} looks"
                     f"{', ' + escape(test['decision']) if test.get('decision') else ''})")
    steps.append(f"outcome: {escape(action['outcome'])}")
    return " → ".join(steps)


def _severity(severity: str | None) -> str:
    colour = SEVERITY_COLOURS.get(severity, "#eeeeee")
    text = "#fff" if severity == "critical" else "#222"
    return f"<span class='severity' style='background:{colour};color:{text}'>&nbsp;{escape(str(severity))}&nbsp;</span>"


def _open_since(alert: dict[str, Any]) -> str:
    if alert.get("open_days", 1) <= 1:
        return ""
    earlier = alert.get("earlier_severities")
    earlier = f"; earlier at {escape(', '.join(earlier))}" if earlier else ""
    return f" <span class='muted'>(open since {_day(alert['first_open'])}, {alert['open_days']} days{earlier})</span>"


def _ab_section(test: dict[str, Any]) -> str:
    looks = [look for look in test.get("looks") or [] if look.get("ci_low") is not None]
    head = (f"<h3>{escape(test['model'])}: {escape(test['champion_version'])} (champion) vs "
            f"{escape(test['challenger_version'])} (challenger) — {escape(test['status'])}"
            f"{', ' + escape(test['decision']) if test.get('decision') else ''}</h3>"
            f"<p>{escape('; '.join(test.get('reasons') or []))}</p>"
            + (f"<p class='muted'>{escape(test['plan_summary'])}</p>" if test.get("plan_summary") else ""))
    metric = test.get("metric") or "loss"
    rows = [(_day(look["as_of"]), look["difference"], look["ci_low"], look["ci_high"]) for look in looks]
    chart = charts.interval_chart("ab-test", f"challenger − champion {metric}, always-valid interval per look", rows,
                                  x_label=f"difference of mean {metric} (below 0: challenger better)",
                                  nothing="no look with enough outcomes for an interval yet")
    text = "".join(f"<li>{day}: {_num(difference)} [{_num(low)}, {_num(high)}]</li>"
                   for day, difference, low, high in rows)
    return head + chart + (f"<ul class='ab-looks'>{text}</ul>" if rows else "")


def _legend() -> str:
    spans = "".join(f"<span style='background:{SEVERITY_COLOURS[s]}'>{s}</span>" for s in ("none", *SEVERITY_ROWS))
    return f"<p class='legend'>severity: {spans}</p>"


def _num(value, *, pct: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" if pct else f"{value:.4g}"


def _day(value: str) -> str:
    return escape(datetime.fromisoformat(value).strftime("%Y-%m-%d"))
