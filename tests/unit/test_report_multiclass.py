"""A multiclass model's per-class figures as the report, the Model health page and ``/metrics`` show
them, from a ``MulticlassPerformance`` of fixed rows: its stored JSON through ``per_class_view`` and
the window metrics (``reporting._metrics``), rendered to HTML (parsed back with the standard
library's parser, so the assertions read cells, not substrings) and to the Prometheus text format
(read with Prometheus' parser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from self_learning.core.multiclass import class_predictions
from self_learning.core.performance import multiclass_performance
from self_learning.loop.report_html import render_learning_report, render_model_health
from self_learning.loop.reporting import MULTICLASS_FIGURES, _metrics, per_class_view
from self_learning.web.metrics import exposition
from support.html import Cells

CLASSES = ("question", "statistic", "story", "offer")
END = datetime(2026, 11, 2, tzinfo=UTC)
# actual -> served, counts: question is served right 3 of 4 times, statistic 1 of 2, story 2 of 2;
# offer never occurs as actual (absent) and is served once; two rows have a label the model lacks
ROWS = ([("question", "question")] * 3 + [("question", "statistic")] + [("statistic", "statistic"),
        ("statistic", "offer")] + [("story", "story")] * 2 + [("meme", "story")] * 2)


def window(rows=ROWS, *, one_hot: bool = False):
    actual = [a for a, _ in rows]
    served = [CLASSES.index(s) for _, s in rows]
    probabilities = np.full((len(rows), len(CLASSES)), 0.0 if one_hot else 0.1)
    probabilities[np.arange(len(rows)), served] = 1.0 if one_hot else 0.7
    predictions = class_predictions(CLASSES, probabilities, [CLASSES[j] for j in served])
    return multiclass_performance(actual, predictions, n_predicted=len(rows) + 4, model_type="hooks",
                                  model_version="*")


def stored_row(performance, window_end: datetime) -> dict:
    """A performance snapshot row as the store returns it (metric columns plus the JSON result)."""
    result = performance.to_dict()
    return {"window_start": window_end - timedelta(days=7), "window_end": window_end, "result": result,
            "sample_count": performance.sample_count, "label_coverage": performance.label_coverage,
            "provisional": performance.provisional,
            **{m: result[m] for m in ("mae", "rmse", "r2", "mape", "wape", "roc_auc", "log_loss")}}


def health(*performances_by_day) -> dict:
    """A ``model_health`` snapshot of one multiclass model with the given daily windows (oldest first)."""
    rows = [stored_row(p, END - timedelta(days=len(performances_by_day) - 1 - i))
            for i, p in enumerate(performances_by_day)]
    latest = rows[-1]
    return {"latest_reports": {}, "models": [{
        "name": "hooks", "task_kind": "multiclass_classification", "champion": "v1",
        "window_end": END.isoformat(), "current": {"*": _metrics(latest)},
        "trend": [{"window_end": r["window_end"].isoformat(), **_metrics(r)} for r in rows],
        "per_class": per_class_view(latest["result"]), "baseline": None, "drift": {}, "open_alerts": [],
        "ab_tests": []}]}


def test_the_view_holds_the_figures_in_the_class_order_and_lists_what_is_missing():
    performance = window()
    view = per_class_view(performance.to_dict())
    assert view["classes"] == list(CLASSES) and [r["class"] for r in view["per_class"]] == list(CLASSES)
    assert view["figures"]["accuracy"] == pytest.approx(6 / 8)
    assert {r["class"]: r["recall"] for r in view["per_class"]} == pytest.approx(
        {"question": 0.75, "statistic": 0.5, "story": 1.0, "offer": None}, nan_ok=False)
    assert {r["class"]: r["support"] for r in view["per_class"]} == {"question": 4, "statistic": 2, "story": 2,
                                                                      "offer": 0}
    assert view["confusion_matrix"] == [[3, 1, 0, 0], [0, 1, 0, 1], [0, 0, 2, 0], [0, 0, 0, 0]]
    assert view["absent_classes"] == ["offer"] and view["unknown_actual"] == {"meme": 2}
    assert per_class_view({"task_kind": "regression", "mae": 1.0}) is None


def test_the_report_shows_named_figures_a_per_class_table_and_a_readable_confusion_heat_map():
    performance = window()
    row = stored_row(performance, END)
    report = {"period": {"start": (END - timedelta(days=7)).isoformat(), "end": END.isoformat()},
              "models": ["hooks"], "performance": {"hooks": {
                  "current": {"*": _metrics(row)}, "trend": [{"window_end": END.isoformat(), **_metrics(row)}],
                  "per_class": per_class_view(row["result"])}},
              "drift_results": {}, "error_distribution": {}, "alerts": {}, "systematic_error_patterns": {},
              "retraining_recommendations": {}, "baselines": {}, "ab_test_conclusions": []}
    page = render_learning_report(report)
    tables = Cells(page).tables
    figures = {r[0]: r[1:] for r in tables["figures"][1:]}
    assert list(figures) == [f.title.format(k=2) for f in MULTICLASS_FIGURES.values()]
    assert figures["Accuracy"][0] == "75.0%" and "share of labelled rows" in figures["Accuracy"][1]
    assert figures["Macro F1"][0] == f"{performance.macro_f1:.4g}"
    assert figures["Log loss"][0] == f"{performance.log_loss:.4g}" and "nats" in figures["Log loss"][1]
    assert figures["Top-2 accuracy"][0] == f"{performance.top_k_accuracy:.1%}"
    assert figures["Brier score"][0] == f"{performance.brier_score:.4g}" and "0–2" in figures["Brier score"][1]
    assert "one-vs-rest" in next(name for name in figures if name.startswith("ROC AUC"))

    per_class = {r[0]: r[1:] for r in tables["per-class-figures"][1:]}
    assert per_class["question"][:3] == ["4", "100.0%", "75.0%"]  # support, precision, recall
    assert per_class["offer"][:3] == ["0", "0.0%", "– no actual row"]  # served once, wrongly; never actual

    matrix = tables["confusion-matrix"]
    assert matrix[0] == ["actual ↓ · served →", *CLASSES, "actual rows"]
    assert matrix[1] == ["question", "3 75.0%", "1 25.0%", "0 0.0%", "0 0.0%", "4"]  # count and row share
    assert matrix[4] == ["offer", "0 –", "0 –", "0 –", "0 –", "0"]  # no actual row: no share
    styles = Cells(page).styles["confusion-matrix"]
    assert styles[1][1].startswith("diagonal|") and "rgb(" in styles[1][1]  # the diagonal is marked, not only shaded
    assert not styles[1][2].startswith("diagonal")
    assert _shade(styles[1][1]) < _shade(styles[1][2]) < _shade(styles[1][3]) == 255  # darker for a larger share
    assert "<caption>" in page and "title=" not in page.split("data-table='confusion-matrix'")[1].split("</table>")[0]

    assert "Classes without an actual row in the window (no recall): offer." in page
    assert "meme (2)" in page and "extend the class list" in page
    assert "data-chart='recall-by-class-values'" in page and "Recall by class on 2026-11-02" in page


def _shade(style: str) -> int:
    """The red channel of a heat-map cell's background (255: white, lower: darker)."""
    return int(style.split("rgb(")[1].split(",", maxsplit=1)[0])


def test_a_figure_not_computable_says_why_in_its_row():
    page = render_model_health(health(window(one_hot=True)))
    figures = {r[0]: r[1:] for r in Cells(page).tables["figures"][1:]}
    assert figures["Log loss"][0] == "–" and "not computed: undefined: the predictions are hard class labels" in \
        figures["Log loss"][1]
    assert figures["Accuracy"][0] == "75.0%"


def test_the_page_draws_the_recall_trend_one_line_per_class():
    better = window([*ROWS[:3], ("question", "question"), *ROWS[4:]])
    page = render_model_health(health(window(), window(), better))
    chart = page.split('data-chart="recall-by-class"')[1].split("</svg>")[0]
    lines = [part.split('"')[0] for part in chart.split('data-series="')[1:]]
    assert lines == ["question", "statistic", "story"]  # offer has no recall (no actual row): no line
    assert ">recall (%)</text>" in chart and ">0</text>" in chart and ">100</text>" in chart  # 0-100 %, labelled
    assert "Latest recall (2026-11-02):" in page and "question 100.0%" in page and "offer –" in page
    assert "data-per-class='4'" in page and "data-table='confusion-matrix'" in page


def test_metrics_export_per_class_gauges_with_a_class_label_and_the_multiclass_figures():
    performance = window()
    text = exposition(health(performance)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    recall = {s.labels["class"]: s.value for s in families["self_learning_class_recall"].samples}
    assert recall == pytest.approx({"question": 0.75, "statistic": 0.5, "story": 1.0})  # offer: undefined, no 0
    support = {s.labels["class"]: s.value for s in families["self_learning_class_support"].samples}
    assert support == {"question": 4, "statistic": 2, "story": 2, "offer": 0}
    precision = {s.labels["class"]: s.value for s in families["self_learning_class_precision"].samples}
    assert precision["question"] == 1.0 and precision["offer"] == 0.0
    assert {s.labels["version"] for s in families["self_learning_class_recall"].samples} == {"*"}
    for name, expected in (("accuracy", performance.accuracy), ("macro_f1", performance.macro_f1),
                           ("log_loss", performance.log_loss)):
        (sample,) = families[f"self_learning_{name}"].samples
        assert sample.value == pytest.approx(expected) and sample.labels == {"model": "hooks", "version": "*"}
    assert "ratio 0-1" in families["self_learning_class_recall"].documentation
    assert "nats" in families["self_learning_log_loss"].documentation


def _contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS colours (``rgb(r,g,b)``, ``#fff`` or ``#000``)."""
    def luminance(colour: str) -> float:
        rgb = [255] * 3 if colour == "#fff" else [0] * 3 if colour == "#000" else \
            [int(c) for c in colour.removeprefix("rgb(").removesuffix(")").split(",")]
        linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("share", [i / 20 for i in range(21)])
def test_every_heat_map_shade_keeps_its_text_legible(share):
    from self_learning.loop.report_html import _heat

    style = dict(part.split(":") for part in _heat(share).split(";"))
    assert _contrast(style["background"], style["color"]) >= 4.5  # WCAG AA for normal text


def test_a_window_without_a_known_actual_class_gives_a_status_not_an_empty_matrix():
    page = render_model_health(health(window([("meme", "story")] * 3)))
    section = page.split("<section class='per-class'")[1].split("</section>")[0]
    assert "insufficient data: " in section and "no labelled rows with a known class" in section
    assert "data-table='confusion-matrix'" not in section and "meme (3)" in section
    figures = {r[0]: r[1] for r in Cells(section).tables["figures"][1:]}
    assert set(figures.values()) == {"–"}


def test_class_labels_are_escaped_everywhere_they_are_shown():
    hostile = "<img src=x onerror=alert(1)>'"
    performance = multiclass_performance(
        [hostile, "b", "b"], class_predictions((hostile, "b"), np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])))
    page = render_model_health(health(performance, performance))
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;&#x27;" in page
