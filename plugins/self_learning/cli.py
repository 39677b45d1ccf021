"""``self-learning`` (also ``python -m self_learning``): the package from a terminal.

A model owner should not need the Airflow UI, a Python prompt or the test helpers to answer "how
is my model doing" or "where is the report": ``status MODEL`` prints the model's health (the
latest window's metrics, each drift check's verdict with its severity and since-when, open
alerts, the baseline, retrain requests and running A/B tests) as the Model health page computes
it (``loop.reporting.model_health``); ``report`` writes a stored learning report, or the Model
health page, as one self-contained HTML file; ``migrate`` creates or upgrades the store's schema;
``demo`` runs ``python -m self_learning.demo`` (a source checkout: it runs the repository's DAGs).

The store is named by ``--db URL``, else the ``FEEDBACK_DB_URL`` environment variable (what
``make migrate`` takes), else ``AIRFLOW_CONN_FEEDBACK_DB`` when it is a URL, else the demo's
``.demo/feedback.db`` when it exists. No command imports Airflow (``demo`` runs it in a
subprocess), so all of them work on the client install (``pip install .``; ``demo`` also needs
Airflow and a checkout).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DB_URL_VARIABLE = "FEEDBACK_DB_URL"
AIRFLOW_CONNECTION_VARIABLE = "AIRFLOW_CONN_FEEDBACK_DB"
DEMO_STORE = Path(".demo") / "feedback.db"
REPORT_KINDS = ("daily", "weekly")
REPORT_TITLES = {"daily": "Daily summary", "weekly": "Weekly learning report"}
METRIC_NAMES = {  # metric -> (human name, unit shown after the value)
    "mape": ("MAPE", " %"), "wape": ("WAPE", ""), "mae": ("MAE", ""), "rmse": ("RMSE", ""), "r2": ("R²", ""),
    "roc_auc": ("ROC AUC", ""), "log_loss": ("log loss", ""), "accuracy": ("accuracy", ""),
    "macro_f1": ("macro F1", ""),
}

DESCRIPTION = """\
The self-learning feedback loop from a terminal: a model's health, its reports, the store's schema
and the demo.

The database: --db URL, else $FEEDBACK_DB_URL, else $AIRFLOW_CONN_FEEDBACK_DB (a URL), else
.demo/feedback.db (what `make demo` leaves). PostgreSQL or SQLite only, e.g.
postgresql://user@host:5432/feedback or sqlite:////absolute/path/feedback.db.
"""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:  # every argument is the demo's own (--help included)
        return run_demo(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        store = open_store(args.db)
        if args.command == "migrate":
            print(f"feedback store at {safe_url(store)}: schema at revision {store.ensure_schema()}")
            return 0
        if args.command == "status":
            print(model_status(store, args.model))
            return 0
        return write_report(store, args.kind, args.output)
    except (ValueError, LookupError) as error:
        print(f"self-learning {args.command}: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="self-learning", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--db", metavar="URL", help=f"the feedback store (default: ${DB_URL_VARIABLE}, "
                                                      f"${AIRFLOW_CONNECTION_VARIABLE}, {DEMO_STORE})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    status = commands.add_parser(
        "status", parents=[database], description="A model's health, read from the feedback store.",
        help="a model's health: latest metrics, drift verdicts (severity, since when), open alerts, baseline, "
             "retrain requests, running A/B tests")
    status.add_argument("model", metavar="MODEL", help="the model's registered name, e.g. roas_predictor")
    report = commands.add_parser(
        "report", parents=[database],
        help="write the latest daily or weekly report (or the Model health page) as HTML, or print where the DAG "
             "stored it",
        description="Write the latest stored learning report (daily summary or weekly report) or the Model health "
                    "page to one HTML file; without --output, print where the DAG stored the report.")
    report.add_argument("--kind", choices=[*REPORT_KINDS, "health"], default="daily",
                        help="daily (default), weekly, or health: the Model health page")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="the HTML file to write")
    commands.add_parser(
        "migrate", parents=[database], help="create or upgrade the store's schema (idempotent)",
        description="Apply the feedback store's migrations up to the newest (idempotent) and seed the default models.")
    commands.add_parser(
        "demo", add_help=False, help="run the demo (python -m self_learning.demo; a source checkout)",
        description="Runs python -m self_learning.demo with the arguments given (demo --help lists them).")
    return parser


def database_url(given: str | None, environ=None, cwd: Path | None = None) -> tuple[str, str]:
    """The store's URL and where it came from (the field an error names): ``given`` (--db), else
    $FEEDBACK_DB_URL, else $AIRFLOW_CONN_FEEDBACK_DB when it is a URL (not Airflow's JSON form),
    else the demo's store under ``cwd`` when it exists."""
    environ = os.environ if environ is None else environ
    for source, candidate in (("--db", given), (DB_URL_VARIABLE, environ.get(DB_URL_VARIABLE)),
                              (AIRFLOW_CONNECTION_VARIABLE, environ.get(AIRFLOW_CONNECTION_VARIABLE))):
        if candidate and (source == "--db" or not candidate.lstrip().startswith("{")):
            return candidate.strip(), source
    demo = (cwd or Path.cwd()) / DEMO_STORE
    if demo.exists():
        return f"sqlite:///{demo.resolve()}", str(DEMO_STORE)
    raise LookupError(f"no feedback store given: pass --db URL or set {DB_URL_VARIABLE} "
                      "(postgresql://user@host:5432/feedback or sqlite:////absolute/path/feedback.db)")


def open_store(given: str | None):
    from .store import FeedbackStore
    from .store.urls import checked_url

    url, source = database_url(given)
    return FeedbackStore.from_url(checked_url(url, field=source))


def safe_url(store) -> str:
    return store.engine.url.render_as_string(hide_password=True)


def run_demo(demo_args: Sequence[str]) -> int:
    from .demo import run

    if not (run.ROOT / "dags").is_dir():
        print(f"self-learning demo: the demo runs the DAGs of a source checkout (no dags/ folder under {run.ROOT}); "
              "run it from a clone of the repository: make demo", file=sys.stderr)
        return 1
    return run.main(list(demo_args))


def model_status(store, model: str) -> str:
    """The terminal view of one model's health (``loop.reporting.model_health``, plus its retrain
    requests)."""
    from .loop.reporting import model_health

    health = next((m for m in model_health(store, trend_days=0)["models"] if m["name"] == model), None)
    if health is None:
        known = ", ".join(spec.name for spec in store.list_models())
        raise LookupError(f"model: {model!r} is not an active model of this store (active: {known or 'none'})")
    lines = [f"{model} ({health['task_kind']}), champion: {health['champion'] or 'none registered'}"]
    lines += _metrics_lines(health)
    lines.append(f"baseline: {_baseline_line(health['baseline'])}")
    lines += _drift_lines(health["drift"])
    alerts = health["open_alerts"]
    lines.append(f"open alerts: {len(alerts) or 'none'}")
    shown: dict[tuple[str, str, str, str], int] = {}  # the same alert of several versions: one line
    for a in alerts:
        key = (a["severity"], a["type"], a["window_end"][:10], a["summary"])
        shown[key] = shown.get(key, 0) + 1
    lines += [f"  [{severity}] {kind} (window ending {day}): {summary}{f' (x{count})' if count > 1 else ''}"
              for (severity, kind, day, summary), count in shown.items()]
    requests = store.retrain_request_list(model=model)
    lines.append(f"retrain requests: {len(requests) or 'none'}")
    for request in requests[-5:]:
        when = f"window ending {request.window_end:%Y-%m-%d}" if request.window_end else "no window"
        result = f" -> {request.result_version}" if request.result_version else ""
        lines.append(f"  {request.request_id} ({when}): {request.status}{result}; {'; '.join(request.reasons)}")
    if len(requests) > 5:
        lines.append(f"  ({len(requests) - 5} older requests not shown)")
    for test in health["ab_tests"]:
        decision = f", last look: {test['decision']}" if test["decision"] else ", no look yet"
        lines.append(f"A/B test {test['test_id']}: {test['champion_version']} vs {test['challenger_version']}, "
                     f"running since {test['started_at'][:10]}{decision}")
    if not health["ab_tests"]:
        lines.append("A/B tests: none running")
    return "\n".join(lines)


def _metrics_lines(health: dict[str, Any]) -> list[str]:
    from .store import ALL_VERSIONS

    overall = health["current"].get(ALL_VERSIONS)
    if not health["window_end"] or overall is None:
        return ["latest window: no performance computed yet (the daily DAG has not run for this model)"]
    figures = [_metric(name, overall[name]) for name in METRIC_NAMES if overall.get(name) is not None]
    coverage = overall.get("label_coverage")
    return [f"latest window (ending {health['window_end'][:10]}, all versions): "
            f"{', '.join(figures) or 'no metric computable'} on {overall['sample_count']:,} labelled rows"
            + (f", label coverage {coverage:.0%}" if coverage is not None else "")
            + (" (provisional: labels still arriving)" if overall.get("provisional") else "")]


def _metric(name: str, value: float) -> str:
    label, unit = METRIC_NAMES[name]
    return f"{label} {value:.1f}{unit}" if unit else f"{label} {value:.3f}"


def _baseline_line(baseline: dict[str, Any] | None) -> str:
    if baseline is None:
        return "none yet (no drift check has compared against one)"
    span = f"{str(baseline['start'])[:10]}..{str(baseline['end'])[:10]} ({baseline.get('source') or 'unknown source'}"
    span += ", provisional" if baseline.get("provisional") else ""
    return span + (", pinned)" if baseline.get("stored") else ", not pinned)")


def _drift_lines(drift: dict[str, dict[str, Any]]) -> list[str]:
    from .loop.reporting import DRIFT_KINDS

    if not drift:
        return ["drift: not checked yet"]
    lines = [f"drift (window ending {max(r['window_end'] for r in drift.values())[:10]}):"]
    for kind in DRIFT_KINDS:
        row = drift.get(kind)
        if row is None:
            lines.append(f"  {kind}: not checked")
            continue
        if row["status"] != "ok":
            lines.append(f"  {kind}: not judged ({row['status']})")
            continue
        findings = [f"{f['name']} ({f['severity']}{', since ' + f['since'] if f['since'] else ''})"
                    for f in row["findings"]]
        since = min((f["since"] for f in row["findings"] if f["since"]), default=None)
        verdict = row["severity"] if row["severity"] != "none" else "no drift"
        lines.append(f"  {kind}: {verdict}{' since ' + since if since else ''}"
                     + (f" in {', '.join(findings)}" if findings else ""))
    return lines


def write_report(store, kind: str, output: Path | None) -> int:
    """Write the latest stored ``kind`` report (or the Model health page) to ``output``; without
    it print where the DAG stored the report's page."""
    from .loop.report_html import render_learning_report, render_model_health

    if kind == "health":
        from .loop.reporting import model_health

        if output is None:
            raise ValueError("--output: the Model health page is rendered on demand; name the file to write")
        page = render_model_health(model_health(store))
    else:
        row = store.latest_learning_report(kind)
        if row is None:
            raise LookupError(f"--kind: no {kind} report is stored yet (the {kind} DAG writes it)")
        period = f"{row['period_start']:%Y-%m-%d}..{row['period_end']:%Y-%m-%d}"
        if output is None:
            print(f"{kind} report of {period}: {row['artifact_uri'] or '(no page stored)'}")
            return 0
        page = render_learning_report(row["report"], title=REPORT_TITLES[kind])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page)
    print(f"wrote {output}")
    return 0
