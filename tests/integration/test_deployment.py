"""The docker-compose deployment, checked offline (no Docker engine here): the compose file is valid
for docker-compose, has the services and wiring the README documents, and the Grafana dashboards'
queries run against a store the loop has filled."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml
from support import ROOT
from support.scenarios import MONITORED_DAYS, MONITORED_MODELS, MONITORED_MULTICLASS

GRAFANA = ROOT / "include" / "grafana"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init"}


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as docker-compose resolves it with the example environment."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose 1.29 is not installed (make test installs Debian's when run as root)"
    command = [binary, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yaml"),
               "--env-file", str(ROOT / ".env.example"), "config"]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert subprocess.run([*command, "-q"], check=False, capture_output=True, timeout=120).returncode == 0
    return yaml.safe_load(result.stdout)


def test_compose_has_the_official_airflow_shape_plus_feedback_db_and_grafana(compose):
    services = compose["services"]
    assert AIRFLOW_SERVICES | {"postgres", "redis", "feedback-db", "grafana"} <= set(services)
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["build"]["context"] == str(ROOT), name  # our image, not _PIP_ADDITIONAL_REQUIREMENTS
        environment = service["environment"]
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in environment
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert environment["AIRFLOW_CONN_FEEDBACK_DB"].startswith("postgresql://feedback:")
        assert environment["AIRFLOW_CONN_FEEDBACK_DB"].endswith("@feedback-db:5432/feedback")
        mounts = _mounts(service)
        assert {target: mounts.get(target) for target in ("/opt/airflow/dags", "/opt/airflow/plugins",
                                                          "/opt/airflow/include")} == {
            "/opt/airflow/dags": str(ROOT / "dags"), "/opt/airflow/plugins": str(ROOT / "plugins"),
            "/opt/airflow/include": str(ROOT / "include")}, name
        if name != "airflow-init":
            assert service["healthcheck"]["test"], name
            assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "redis", "feedback-db", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    assert (ROOT / "Dockerfile").read_text().count("FROM apache/airflow:3.3.2") == 1
    assert services["grafana"]["depends_on"]["feedback-db"]["condition"] == "service_healthy"


def test_secrets_come_from_the_env_file_and_the_example_holds_none(compose):
    text = (ROOT / "docker-compose.yaml").read_text()
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert required <= set(example), required - set(example)
    for name in required:
        assert example[name].startswith("change-me"), f"{name}: .env.example must not hold a real secret"
    resolved = json.dumps(compose)
    assert "change-me-feedback-db" in resolved and "change-me-admin" in resolved  # taken from the env file


def test_readme_names_only_services_that_exist(compose):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Production: docker compose"):]
    section = section[:section.index("\n## ", 1)]
    documented = set(re.findall(r"^\| `([a-z][a-z-]+)` \|", section, flags=re.MULTILINE))
    assert documented == set(compose["services"])


def test_grafana_provisioning_points_the_dashboards_at_the_feedback_db(compose):
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/feedback-db.yaml").read_text())
    (source,) = datasource["datasources"]
    assert source["url"] == "feedback-db:5432" and source["jsonData"]["database"] == "feedback"
    assert source["user"] == "grafana_reader"  # created by include/feedback-db/create-grafana-reader.sh
    assert "grafana_reader" in (ROOT / "include/feedback-db/create-grafana-reader.sh").read_text()
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/self-learning.yaml").read_text())
    mounts = _mounts(compose["services"]["grafana"])
    assert Path(mounts[provider["providers"][0]["options"]["path"]]) == GRAFANA / "dashboards"
    assert Path(mounts["/etc/grafana/provisioning"]) == GRAFANA / "provisioning"
    for dashboard in (GRAFANA / "dashboards").glob("*.json"):
        uids = set(re.findall(r'"uid": "([^"]+)"', dashboard.read_text())) - {json.loads(dashboard.read_text())["uid"]}
        assert uids == {source["uid"]}, dashboard.name


def _mounts(service: dict) -> dict[str, str]:
    """target -> source of a resolved service's volumes (docker-compose 1.29 prints source:target:mode)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":") if isinstance(volume, str) else (volume["source"], volume["target"])
        mounts[target] = source
    return mounts


def _grafana_sql(sql: str, models: list[str]) -> str:
    """A panel's query with Grafana's macros and variables as Grafana expands them."""
    sql = re.sub(r"\$__timeFilter\(([\w.]+)\)", r"\1 BETWEEN '2026-08-01T00:00:00Z' AND '2026-11-03T00:00:00Z'", sql)
    sql = sql.replace("$model", ",".join(f"'{m}'" for m in models)).replace("$window_days", "7")
    assert "$" not in sql, sql
    return sql


def test_dashboard_queries_run_on_the_store_the_loop_filled(monitored_store, monitored_store_url):
    dashboard = json.loads((GRAFANA / "dashboards/self_learning.json").read_text())
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "model")
    rows_by_panel = {}
    with psycopg.connect(monitored_store_url) as conn:
        models = [row[0] for row in conn.execute(variable["query"]).fetchall()]
        assert set(MONITORED_MODELS) <= set(models)
        for panel in dashboard["panels"]:
            (target,) = panel["targets"]
            rows_by_panel[panel["title"]] = conn.execute(_grafana_sql(target["rawSql"], models)).fetchall()
    mape = rows_by_panel["MAPE per model and version (regressors)"]
    assert {series.split()[0] for _, series, _ in mape} == set(MONITORED_MODELS) and len(mape) >= 4
    drift = rows_by_panel["Drift severity per model and check"]
    assert {(series, value) for _, series, value in drift} >= {("ctr_predictor feature", 4)}  # critical drift
    assert sum(count for _, count in rows_by_panel["Open alerts"]) == len(monitored_store.open_alerts())
    (test,) = rows_by_panel["A/B tests (champion vs challenger)"]
    assert test[:5] == ("ctr-v6", "ctr_predictor", "v5", "v6", "running")
    assert rows_by_panel["Champions"][0][:2] == ("ctr_predictor", "v5")
    flagged = {(model, kind, name): since for model, kind, name, _, since, _ in
               rows_by_panel["Flagged against the baseline, since when"]}
    assert flagged["ctr_predictor", "feature_drift", "audience_size"] == "2026-10-28"  # the scenario's day 40
    baselines = {row[0]: row for row in rows_by_panel["Baselines"]}
    assert baselines["ctr_predictor"][3] == "default" and set(MONITORED_MODELS) <= set(baselines)

    # the multiclass hook classifier's per-class panels, equal to its stored performance
    from self_learning.core.performance import performance_from_dict
    from self_learning.store import ALL_VERSIONS

    (stored,) = monitored_store.latest_results("performance_snapshots", model=MONITORED_MULTICLASS,
                                               model_version=ALL_VERSIONS, kind="performance")
    latest = performance_from_dict(stored["result"])
    recall = rows_by_panel["Recall per class (multiclass)"]
    assert {series for _, series, _ in recall} == {f"{MONITORED_MULTICLASS} {c}" for c in latest.classes}
    assert len(recall) == len(latest.classes) * len(MONITORED_DAYS)  # a point per class and daily run
    assert {series.split()[1]: value for time, series, value in recall if time == stored["window_end"]} == \
        pytest.approx(latest.per_class_recall)
    table = rows_by_panel["Per-class figures, latest window (multiclass)"]
    assert [row[2] for row in table] == list(latest.classes)  # the model's class order
    assert [row[3] for row in table] == list(latest.per_class_support.values())
    assert [row[5] for row in table] == pytest.approx(list(latest.per_class_recall.values()))
    confusion = rows_by_panel["Confusion matrix, latest window (multiclass)"]
    assert [row[4] for row in confusion] == [count for counts in latest.confusion_matrix for count in counts]
    assert [row[1:4] for row in confusion if row[3]] == [(c, c, True) for c in latest.classes]
    assert [row[5] for row in confusion][:len(latest.classes)] == pytest.approx(
        [count / sum(latest.confusion_matrix[0]) for count in latest.confusion_matrix[0]])
