"""``make demo``: the daily loop on the embedded default, end to end, with nothing to start by hand.

Creates an embedded feedback store (SQLite) and an embedded Airflow metadata DB under ``.demo/``,
generates 60 days of synthetic ad-campaign traffic for the four default models (feature drift
injected from day 52, a concept shift in ``ctr_predictor`` from day 50; ``hook_classifier`` is a
multiclass model over five hook types whose ``offer`` class grows more prevalent with the feature
drift, and the summary shows its accuracy, macro F1 and actual class shares), loads the predictions
and the outcomes that had arrived before the demo's first day, leaves the later outcomes in the
outcome inbox, runs the daily DAG for the last days with ``dag.test()`` (what ``airflow dags test``
runs; all runs in one Airflow process, ``self_learning.demo.airflow_runs``), then the retrain DAG
for the first retrain request of ``ctr_predictor`` (with the conf the daily run triggered it with)
and prints what it all found: drifts, alerts, retrain decisions, the registry and the A/B
test. Deterministic for a seed; every run starts from scratch.

    python -m self_learning.demo [--days-to-run 3] [--rows-per-day 500] [--seed 7]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from ..core.types import Severity, TaskKind
from ..store import ALL_VERSIONS, FeedbackStore
from .airflow_runs import DAG_ID, RETRAIN_DAG_ID, WEEKLY_DAG_ID
from .synthetic import Scenario, generate

ROOT = Path(__file__).resolve().parents[3]
RETRAINED_MODEL = "ctr_predictor"  # the model with the concept shift


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m self_learning.demo", description=__doc__.replace("``", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # plain text, not RST
    parser.add_argument("--home", type=Path, default=ROOT / ".demo", help="demo state directory (recreated)")
    parser.add_argument("--days-to-run", type=int, default=3, help="daily runs, ending at the data's last day")
    parser.add_argument("--rows-per-day", type=int, default=500, help="predictions per model and day")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    home = args.home.resolve()
    shutil.rmtree(home, ignore_errors=True)
    (home / "logs").mkdir(parents=True)
    scenario = Scenario(days=60, rows_per_day=args.rows_per_day, seed=args.seed, feature_drift_day=52,
                        concept_shift_day=50, concept_shift_model="ctr_predictor", multiclass_hooks=True)
    ends = [scenario.end - timedelta(days=n) for n in reversed(range(args.days_to_run))]

    store_url = f"sqlite:///{home / 'feedback.db'}"
    store = FeedbackStore.from_url(store_url)
    store.ensure_schema()
    data = generate(scenario)
    for spec in data.models:
        store.register_model(spec)
    report = store.register_predictions(data.predictions)
    first_interval = ends[0] - timedelta(days=1)
    known = store.record_outcomes(data.outcomes_received(end=first_interval))
    inbox = store.enqueue_outcomes(data.outcomes_received(first_interval, scenario.end))
    print(f"synthetic data: {report.inserted:,} predictions over {scenario.days} days for "
          f"{len(data.models)} models; {known.inserted:,} outcomes already recorded, {inbox.inserted:,} waiting "
          f"in the outcome inbox (label delay); feature drift from {scenario.day_start(52):%Y-%m-%d}, "
          f"concept shift in ctr_predictor from {scenario.day_start(50):%Y-%m-%d}")

    env = airflow_env(home, store_url)
    t0 = time.perf_counter()
    log = airflow_runs(env, home, store_url, ends, rows_per_day=args.rows_per_day, seed=args.seed)
    print(f"ran {DAG_ID} for the days ending {', '.join(f'{end:%Y-%m-%d}' for end in ends)}", end="")
    requests = store.retrain_request_list(model=RETRAINED_MODEL)
    print(f", then {RETRAIN_DAG_ID} for {requests[0].request_id}" if requests else "", end="")
    if store.list_ab_tests(model=RETRAINED_MODEL):
        print(f", served its A/B test and ran {WEEKLY_DAG_ID}", end="")
    print(f", in {time.perf_counter() - t0:.0f} s (log: {log})")

    print()
    print(summary(store, ends))
    print(loop_summary(store, RETRAINED_MODEL))
    daily = store.latest_learning_report("daily")
    if daily is not None:
        print(f"daily summary page of {daily['period_end']:%Y-%m-%d}: {daily['artifact_uri']}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s; state in {home}")
    return 0


def airflow_env(home: Path, store_url: str) -> dict[str, str]:
    """An Airflow of its own under ``home``: SQLite metadata DB, this project's DAGs and plugins."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_FEEDBACK_DB": store_url,  # sqlite:////abs/path: the hook opens the embedded store
        "AIRFLOW_VAR_SELF_LEARNING_ARTIFACT_ROOT": f"file://{home / 'artifacts'}",
    }


def airflow_runs(env: dict[str, str], home: Path, store_url: str, ends, *, rows_per_day: int, seed: int) -> Path:
    """Migrate the Airflow DB and run the DAGs (``self_learning.demo.airflow_runs``, one process);
    the output goes to a log file, shown only on failure."""
    log = home / "logs" / "airflow.log"
    command = [sys.executable, "-m", "self_learning.demo.airflow_runs", "--dags", str(ROOT / "dags"),
               "--store-url", store_url, "--model", RETRAINED_MODEL, "--rows-per-day", str(rows_per_day),
               "--seed", str(seed), *(end.isoformat() for end in ends)]
    with log.open("w") as out:
        result = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        sys.stderr.write(log.read_text()[-5000:])
        raise SystemExit(f"the demo's Airflow runs failed (exit {result.returncode}); full log: {log}")
    return log


def summary(store: FeedbackStore, ends) -> str:
    """What the runs found, window by window and model by model, read back from the store: each
    model's baseline, its findings against it (each since the day its change started), alerts and
    retrain requests."""
    from ..loop.reporting import DRIFT_KINDS, drift_findings

    lines = []
    kinds = {spec.name: spec.task_kind for spec in store.list_models(active_only=False)}
    for end in ends:
        lines.append(f"== window ending {end:%Y-%m-%d} (the current 7 days vs each model's baseline) ==")
        drift = {(r["model"], r["kind"]): r for r in store.read_results("drift_reports", window_end=end)}
        performance = {r["model"]: r for r in store.read_results("performance_snapshots", window_end=end,
                                                                   model_version=ALL_VERSIONS, kind="performance")}
        alerts = store.check_alerts(until=end, include_suppressed=True)
        requests = {r["model"]: r for r in store.retrain_request_list(window_end=end)}
        for model in sorted(performance):
            p = performance[model]
            multiclass = kinds.get(model) == TaskKind.MULTICLASS_CLASSIFICATION
            provisional = " (provisional)" if p["provisional"] else ""
            lines.append(f"  {model}: {_headline_metric(p, multiclass=multiclass)} on {p['sample_count']:,} labelled "
                         f"rows, label coverage {p['label_coverage']:.0%}{provisional}")
            if multiclass:
                lines.append(f"    actual classes: {_class_shares(p['result'])}")
            baseline = next((r["result"]["statistical_tests"].get("baseline") for (m, _), r in drift.items()
                             if m == model), None)
            lines.append(f"    baseline: {baseline['start'][:10]}..{baseline['end'][:10]} ({baseline['source']}"
                         f"{', provisional' if baseline['provisional'] else ''})" if baseline
                         else "    baseline: none yet (the model's first day)")
            for kind in DRIFT_KINDS:
                row = drift.get((model, kind))
                if row is None:
                    continue
                if row["status"] != "ok":
                    lines.append(f"    {kind}: {row['status']}")
                elif row["severity"] != Severity.NONE.value:
                    found = [f"{f['name']}{' since ' + f['since'] if f['since'] else ''}"
                             for f in drift_findings(kind, row["result"])]
                    lines.append(f"    {kind}: {row['severity']}{' in ' + ', '.join(found) if found else ''}")
            mine = [a for a in alerts if a.model == model]
            opened = [a for a in mine if a.status == "open"]
            for alert in opened:
                cause = alert.dedupe_key.split("|", 2)[2]
                lines.append(f"    ALERT [{alert.severity}] {alert.alert_type}: {cause}")
            if len(mine) > len(opened):
                lines.append(f"    ({len(mine) - len(opened)} repeated alerts suppressed by the cooldown)")
            if model in requests:
                lines.append(f"    RETRAIN requested: {'; '.join(requests[model].reasons)}")
            else:
                lines.append("    no retrain")
        if not drift:
            lines.append("  (no results)")
    return "\n".join(lines)



def _headline_metric(snapshot, *, multiclass: bool) -> str:
    """A stored performance snapshot's headline: MAPE, a multiclass model's accuracy and macro F1
    (from its stored ``MulticlassPerformance``), else ROC AUC."""
    if multiclass:
        result = snapshot["result"]
        shown = [f"{name} {result[key]:.3f}" for name, key in (("accuracy", "accuracy"), ("macro F1", "macro_f1"),
                                                               ("log loss", "log_loss")) if result.get(key) is not None]
        return ", ".join(shown) or "no metric"
    if snapshot["mape"] is not None:
        return f"MAPE {snapshot['mape']:.1f} %"
    return f"ROC AUC {snapshot['roc_auc']:.3f}" if snapshot["roc_auc"] is not None else "no metric"


def _class_shares(result) -> str:
    """Each class's share of the window's labelled rows (its support), as in ``MulticlassPerformance``."""
    support = result.get("per_class_support") or {}
    total = sum(support.values())
    return ", ".join(f"{c} {n / total:.0%}" for c, n in support.items()) if total else "none labelled"


def loop_summary(store: FeedbackStore, model: str) -> str:
    """The registry and the A/B test of the retrained model, and what became of its requests."""
    lines = [f"== retraining {model} =="]
    for request in store.retrain_request_list(model=model):
        verdict = (request.detail or {}).get("verdict", "")
        lines.append(f"  request {request.request_id}: {request.status}"
                     f"{' -> ' + request.result_version if request.result_version else ''} {verdict}")
    for version in store.version_history(model):
        lines.append(f"  version {version.version}: {version.status}"
                     f"{' (' + version.artifact_uri + ')' if version.artifact_uri else ''}")
    for test in store.list_ab_tests(model=model):
        config = test.config
        lines.append(f"  A/B test {test.test_id}: {test.status}, challenger share {config['traffic_split']:.0%},"
                     f" unit {config['unit']}, at least {config['min_days']:g} and at most {config['max_days']:g} "
                     "days, judged by the weekly conclusion")
        lines.append(f"    {config.get('plan_summary') or 'no plan'}")
        latest = (test.result or {}).get("latest") or {}
        decision = latest.get("decision") or {}
        if decision:
            counts = (latest.get("sample_ratio") or {}).get("counts")
            lines.append(f"    last look {latest['as_of'][:10]}: {decision['action']} (assigned per arm {counts}): "
                         + "; ".join(decision["reasons"]))
    return "\n".join(lines)

