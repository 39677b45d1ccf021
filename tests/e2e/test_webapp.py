"""The plugin's web app in a real ``airflow api-server``: the "Model health" page in headless
Chromium, ``/metrics`` read with Prometheus' own parser, authentication refused without an Airflow
user, and the daily summary the daily DAG writes. The monitored store's hook classifier is a
multiclass model: its per-class figures (the confusion heat map, the recall trend, the per-class
gauges) are checked as rendered and scraped."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from self_learning.core.performance import performance_from_dict
from self_learning.domain import Severity
from self_learning.store import ALL_VERSIONS
from self_learning.synthetic import HOOK_CLASSES
from support.airflow_server import AirflowProcesses
from support.browser import devtools_page
from support.scenarios import MONITORED_DAYS as DAYS
from support.scenarios import MONITORED_MODELS as MODELS
from support.scenarios import MONITORED_MULTICLASS as MULTICLASS

END = DAYS[-1]
SCRAPE_TOKEN = "scrape-token-for-tests"
PATHS = ("/self-learning/", "/self-learning/health.json", "/self-learning/reports/daily", "/self-learning/metrics")


@pytest.fixture
def store(monitored_store):
    return monitored_store


@pytest.fixture(scope="module")
def report_root(monitored_store) -> Path:
    """The report root the monitored store's daily runs wrote under (``<root>/daily/<page>``)."""
    return Path(monitored_store.latest_learning_report("daily")["artifact_uri"].removeprefix("file://")).parents[1]


@pytest.fixture(scope="module")
def airflow(monitored_store, monitored_store_url, airflow_db, report_root):
    """A real api-server on the monitored store and its report root, with a scrape token for /metrics."""
    processes = AirflowProcesses(airflow_db, {"AIRFLOW_CONN_FEEDBACK_DB": monitored_store_url,
                                              "AIRFLOW_VAR_SELF_LEARNING_REPORT_ROOT": f"file://{report_root}",
                                              "AIRFLOW__SELF_LEARNING__METRICS_TOKEN": SCRAPE_TOKEN},
                                 users={"analyst": "analyst-password"})
    try:
        processes.start_api_server()
        yield processes
    finally:
        processes.stop()


def test_daily_run_stores_a_one_page_summary_of_the_day(store):
    reports = store.learning_reports(kind="daily")
    assert [(r["period_start"], r["period_end"]) for r in reports] == [(d - timedelta(days=1), d) for d in DAYS]
    summary = reports[-1]["report"]
    assert summary["models"] == [*MODELS, MULTICLASS]
    assert summary["drift_results"]["ctr_predictor"]["days"] == [END.isoformat()]
    performance = summary["performance"]["roas_predictor"]
    assert performance["current"][ALL_VERSIONS]["sample_count"] > 0  # the daily run's 7-day window
    assert [t["window_end"] for t in performance["trend"]] == [d.isoformat() for d in DAYS]  # one point a day
    assert reports[-1]["artifact_uri"].endswith("daily/learning_report_2026-11-02.html")
    hooks = summary["performance"][MULTICLASS]
    assert hooks["per_class"]["classes"] == list(HOOK_CLASSES) and len(hooks["per_class"]["confusion_matrix"]) == 5
    assert [sorted(t["per_class_recall"]) for t in hooks["trend"]] == [sorted(HOOK_CLASSES)] * len(DAYS)


def test_every_route_refuses_requests_without_an_airflow_user(airflow):
    for path in PATHS:
        assert httpx.get(airflow.base_url + path, timeout=30).status_code == 401, path
        forged = httpx.get(airflow.base_url + path, headers={"Authorization": "Bearer forged"}, timeout=30)
        assert forged.status_code == 403, path
    token = airflow.token()
    for path in PATHS:
        response = httpx.get(airflow.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert response.status_code == 200, (path, response.text)


def test_metrics_endpoint_exports_the_stored_state_in_prometheus_format(airflow, store):
    response = httpx.get(f"{airflow.base_url}/self-learning/metrics", timeout=60,
                         headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        assert family.type == "gauge" and family.documentation
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(name, **labels):
        return samples[(f"self_learning_{name}", tuple(sorted(labels.items())))]

    (stored,) = [r for r in store.latest_results("performance_snapshots", model="roas_predictor",
                                                 model_version=ALL_VERSIONS, kind="performance")]
    assert value("mae", model="roas_predictor", version=ALL_VERSIONS) == pytest.approx(stored["mae"])
    assert value("sample_count", model="roas_predictor", version="v3") > 0
    assert value("window_end_timestamp_seconds", model="ctr_predictor") == END.timestamp()
    assert value("champion_info", model="ctr_predictor", version="v5") == 1
    assert ("self_learning_champion_info", (("model", "roas_predictor"), ("version", "v3"))) not in samples
    assert value("drift_severity", model="ctr_predictor", kind="feature") >= Severity.LOW.rank  # audience_size
    assert value("drifted_features", model="ctr_predictor") >= 1
    open_causes = {a.dedupe_key for a in store.open_alerts()}  # a cause open on two days is one
    assert open_causes and sum(v for (name, _), v in samples.items() if name == "self_learning_open_alerts") == len(
        open_causes)
    assert value("ab_test_running", model="ctr_predictor", test_id="ctr-v6", champion="v5", challenger="v6") == 1

    (row,) = store.latest_results("performance_snapshots", model=MULTICLASS, model_version=ALL_VERSIONS,
                                  kind="performance")
    hooks = performance_from_dict(row["result"])
    for label in HOOK_CLASSES:
        assert value("class_recall", model=MULTICLASS, version=ALL_VERSIONS, **{"class": label}) == pytest.approx(
            hooks.per_class_recall[label])
        assert value("class_precision", model=MULTICLASS, version=ALL_VERSIONS, **{"class": label}) == pytest.approx(
            hooks.per_class_precision[label])
        assert value("class_support", model=MULTICLASS, version=ALL_VERSIONS, **{"class": label}) == \
            hooks.per_class_support[label]
    assert value("accuracy", model=MULTICLASS, version=ALL_VERSIONS) == pytest.approx(hooks.accuracy)
    assert value("macro_f1", model=MULTICLASS, version=ALL_VERSIONS) == pytest.approx(hooks.macro_f1)
    assert value("log_loss", model=MULTICLASS, version=ALL_VERSIONS) == pytest.approx(hooks.log_loss)
    assert not [name for name, labels in samples if name == "self_learning_class_recall"
                and dict(labels)["model"] != MULTICLASS]  # per-class gauges only for the multiclass model


def test_model_health_page_renders_in_a_browser(airflow, store):
    token = airflow.token()
    with devtools_page(size=(1300, 1000)) as page:
        dom = page.open(f"{airflow.base_url}/self-learning/", cookies={"_token": token},
                        wait_for="document.querySelector('svg[data-chart=trend]')")
        page.screenshot("model_health.png")
        registered = {spec.name for spec in store.list_models()}
        assert set(re.findall(r"data-model=\"([a-z_]+)\"", dom)) == registered > set(MODELS)
        assert len(re.findall(r"data-chart=\"trend(-empty)?\"", dom)) == len(registered)  # a chart or its empty state
        trends = re.findall(r"data-chart=\"trend\".*?</svg>", dom, flags=re.S)
        assert sum("data-series=" in chart for chart in trends) == len(MODELS) + 1  # where daily runs stored metrics
        assert "champion: <b>v5</b>" in dom and "ctr_predictor: v5 (champion) vs v6 (challenger)" in dom
        causes = {a.dedupe_key for a in store.open_alerts(model="ctr_predictor")}
        assert f"Open alerts ({len(causes)} causes)" in dom  # one line per cause, not per day and severity
        assert "/self-learning/reports/daily" in dom and "/self-learning/reports/weekly" not in dom  # none stored

        # the multiclass model's per-class section, as Chromium laid it out
        section = page.call("Runtime.evaluate", returnByValue=True, expression=PER_CLASS_LAYOUT)["result"]["value"]
        assert section["model"] == MULTICLASS and section["classes"] == list(HOOK_CLASSES)
        assert section["cells"] == 25 and section["heat_map_height"] > 100 and section["diagonal_bold"] == 5
        assert len(set(section["backgrounds"])) > 3  # shaded by the row share, not one colour
        assert all(re.fullmatch(r"\d+ (\d+\.\d%|–)", text) for text in section["cell_texts"])  # count and share
        assert section["recall_lines"] == list(HOOK_CLASSES) and section["recall_chart_width"] > 200
        assert "Latest recall (2026-11-02):" in dom and "Accuracy" in dom and "Top-2 accuracy" in dom

        summary = page.open(f"{airflow.base_url}/self-learning/reports/daily",
                            wait_for="document.querySelector('svg[data-chart=trend]')")
        page.screenshot("daily_summary.png")
        assert "Daily summary: 2026-11-01 – 2026-11-02" in summary and "by day" in summary

        # the page inside the Airflow UI, reached from its navigation
        ui = page.open(f"{airflow.base_url}/plugin/model-health", wait_for="document.querySelector('iframe')")
        page.screenshot("airflow_ui_model_health.png")
        assert "/self-learning/" in ui and "Model health" in ui


def test_incident_view_and_a_drifted_features_distribution_render_in_a_browser(airflow, store):
    """ctr_predictor's features shifted on day 40 of 45: its incident (since when, why, what was
    done) and the baseline-vs-current distribution of a drifted feature, as Chromium lays them out."""
    with devtools_page(size=(1300, 1000)) as page:
        page.open(f"{airflow.base_url}/self-learning/", cookies={"_token": airflow.token()},
                  wait_for="document.querySelector('section[data-incident=ctr_predictor]')")
        page.screenshot("incident_view.png", selector="section[data-incident=ctr_predictor]")
        incident = page.call("Runtime.evaluate", returnByValue=True, expression=INCIDENT_LAYOUT)["result"]["value"]
        alerts = store.check_alerts(until=END, hours=30 * 24, model="ctr_predictor", include_suppressed=True)
        first_seen = min(a.window_end for a in alerts)
        assert incident["heading"].startswith(f"Incident: open · first seen {first_seen:%Y-%m-%d} · last seen "
                                              f"{END:%Y-%m-%d}")
        assert sorted(incident["causes"]) == sorted({a.dedupe_key for a in alerts})  # one row per cause
        rows = {row[0]: row for row in incident["rows"]}
        drift = rows["feature drift of audience_size"]
        drifted = [a.window_end for a in alerts if a.dedupe_key == "ctr_predictor|feature_drift|audience_size"]
        assert drift[1:4] == [f"{min(drifted):%Y-%m-%d}", f"{max(drifted):%Y-%m-%d}", str(len(set(drifted)))]
        assert re.match(r"\d\d-\d\d (low|medium|high|critical)", drift[4])  # severity by day, as text
        assert "audience_size · " in drift[6] and "CUSUM" in drift[6] and "since 2026-" in drift[6]  # the checks
        assert incident["chart_width"] > 250 and incident["legend"] >= 1
        assert incident["actions"] and all("retrain request" in a and "outcome:" in a for a in incident["actions"])

        page.screenshot("feature_distribution.png", selector="figure.distribution[data-feature=audience_size]")
        chart = page.call("Runtime.evaluate", returnByValue=True, expression=DISTRIBUTION_LAYOUT)["result"]["value"]
        assert chart["width"] > 250 and chart["height"] > 120
        assert "share of rows (%)" in chart["texts"] and any(t.startswith("baseline (") for t in chart["texts"])
        assert chart["note"].startswith("audience_size: ") and "the largest change is in" in chart["note"]


# The incident section of ctr_predictor as laid out: heading, causes (their rows as text), the
# severity chart's size and legend, and the actions.
INCIDENT_LAYOUT = """(() => {
  const section = document.querySelector('section[data-incident=ctr_predictor]');
  const rows = [...section.querySelectorAll('table.incident-causes tr[data-cause]')];
  const chart = section.querySelector('svg[data-chart=incident-severity]');
  return {heading: section.querySelector('h3').innerText,
          causes: rows.map(tr => tr.dataset.cause),
          rows: rows.map(tr => [...tr.cells].map(td => td.innerText.replace(/\\s+/g, ' ').trim())),
          chart_width: chart.getBoundingClientRect().width,
          legend: [...chart.querySelectorAll('text')].filter(t => t.textContent.includes('suppressed')).length
                  + [...chart.querySelectorAll('text')].filter(t => t.textContent.includes('raised')).length,
          actions: [...section.querySelectorAll('ol.actions li')].map(li => li.innerText)};
})()"""
DISTRIBUTION_LAYOUT = """(() => {
  const figure = document.querySelector('figure.distribution[data-feature=audience_size]');
  const box = figure.querySelector('svg[data-chart=distribution]').getBoundingClientRect();
  return {width: box.width, height: box.height,
          texts: [...figure.querySelectorAll('text')].map(t => t.textContent.trim()),
          note: document.querySelector('ul.distribution-notes li[data-feature=audience_size]').innerText};
})()"""


# The per-class section of the page as laid out: its model, the heat map's cells (text, computed
# background, bold diagonal, rendered height) and the recall chart's lines.
PER_CLASS_LAYOUT = """(() => {
  const section = document.querySelector('section.per-class');
  let heading = section; while (heading && !heading.matches('h2[data-model]')) heading = heading.previousElementSibling;
  const table = section.querySelector('table[data-table=confusion-matrix]');
  const cells = [...table.querySelectorAll('td[data-share]')];
  const chart = section.querySelector('svg[data-chart=recall-by-class]');
  return {model: heading && heading.dataset.model,
          classes: [...section.querySelectorAll('table.per-class-figures th[scope=row]')].map(th => th.textContent),
          cells: cells.length, heat_map_height: table.getBoundingClientRect().height,
          cell_texts: cells.map(td => td.innerText.replace(/\\s+/g, ' ').trim()),
          backgrounds: cells.map(td => getComputedStyle(td).backgroundColor),
          diagonal_bold: cells.filter(td => Number(getComputedStyle(td).fontWeight) >= 700).length,
          recall_lines: [...chart.querySelectorAll('g[data-series]')].map(line => line.dataset.series),
          recall_chart_width: chart.getBoundingClientRect().width};
})()"""


@pytest.fixture
def stored_weekly_report(store, monitored_store_url):
    """Store a weekly report row naming a page; the rows go again afterwards, since the monitored
    store is shared (the page test expects no weekly report)."""
    import psycopg

    def save(uri: str) -> None:
        store.save_learning_report(period_start=END - timedelta(days=7), period_end=END, kind="weekly",
                                   report={"models": []}, artifact_uri=uri)

    yield save
    with psycopg.connect(monitored_store_url) as conn:
        conn.execute("DELETE FROM learning_reports WHERE kind = 'weekly'")


def test_report_route_serves_only_html_pages_under_the_report_root(airflow, report_root, stored_weekly_report,
                                                                    tmp_path):
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    weekly = report_root / "weekly"
    weekly.mkdir(exist_ok=True)
    page = weekly / "learning_report_2026-11-02.html"
    page.write_text("<!doctype html><title>weekly</title><p>the week</p><script>alert(1)</script>")
    outside = tmp_path / "outside.html"
    outside.write_text("<p>secret page outside the root</p>")
    (weekly / "link.html").symlink_to(outside)
    (weekly / "notes.txt").write_text("not a page")
    refused = {
        "a system file": "file:///etc/passwd",
        "a page outside the root": f"file://{outside}",
        "a path with ..": f"file://{report_root}/weekly/../../{outside.relative_to(report_root.parent)}",
        "escaped ..": f"file://{report_root}/weekly/%2e%2e/%2E%2E/../../../../etc/passwd",
        "a root-like sibling": f"file://{report_root}-other/weekly/x.html",
        "a symlink out of the root": f"file://{weekly}/link.html",
        "a non-HTML file": f"file://{weekly}/notes.txt",
        "a folder": f"file://{weekly}",
        "a missing page": f"file://{weekly}/gone.html",
        "another scheme": f"s3://bucket{page}",
    }
    for case, uri in refused.items():
        stored_weekly_report(uri)
        response = httpx.get(f"{airflow.base_url}/self-learning/reports/weekly", headers=headers, timeout=30)
        assert response.status_code == 404, (case, response.status_code, response.text[:200])
        assert "root:" not in response.text and "secret" not in response.text and uri not in response.text, case

    stored_weekly_report(f"file://{page}")
    response = httpx.get(f"{airflow.base_url}/self-learning/reports/weekly", headers=headers, timeout=30)
    assert response.status_code == 200 and "the week" in response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy  # the page's script does not run
    assert "sandbox" in policy and "frame-ancestors 'self'" in policy
