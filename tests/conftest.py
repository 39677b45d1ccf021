"""Test session set-up: an isolated Airflow home and a throwaway PostgreSQL server per process.

The Airflow environment is set here, at import time, because Airflow reads its configuration when
first imported. Under pytest-xdist every worker is its own process, so each has its own Airflow
home (its own SQLite metadata DB) and its own PostgreSQL server: nothing is shared between workers.
Nothing here needs a server started by hand.

Where the tests live: ``unit/`` (no database, no DAG run), ``integration/`` (real PostgreSQL,
``dag.test()``), ``e2e/`` (Airflow's scheduler and api-server as processes, Chromium). Shared
helpers are in ``support/``; no test module imports another.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from support import ROOT

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="self-learning-airflow-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, True)
os.environ.update(
    AIRFLOW_HOME=str(AIRFLOW_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
    AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="True",
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
)
# One OpenMP thread per test process: the xdist workers already fill the cores, and
# HistGradientBoosting's thread pool on a busy 2-core machine turned a 1.6 s multiclass fit into
# 27.8 s (load 6.4). Set before scikit-learn is imported (its OpenMP runtime reads it once).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from support.pg_server import ThrowawayPostgres  # noqa: E402

# Modules whose tests share a session fixture that is expensive to build run on one xdist worker,
# so the fixture is built once: the store the loop filled (``monitored_store``).
SHARED_GROUPS = {"test_deployment.py": "monitored", "test_audit_grafana.py": "monitored",
                 "test_webapp.py": "monitored"}
SLOW_FIRST = ("e2e", "integration")  # handed out first, so the longest groups do not start last
# The longest modules (measured: 5.5, 3, 2.5 and 2 minutes on 2 cores), handed out before everything
# else, longest first, so that neither worker starts a long module while the other is nearly done.
LONGEST = ("e2e/test_scheduler.py", "unit/test_drift_simulation.py", "integration/test_daily_dag.py",
           "e2e/test_webapp.py")


def pytest_itemcollected(item):
    """One xdist group per integration or e2e module, except the modules of ``SHARED_GROUPS``
    (read by ``--dist loadgroup``; ``make test``'s ``--dist loadfile`` groups by ``SHARED_GROUPS``
    in ``pytest_xdist_make_scheduler`` below)."""
    path = item.path
    if path.parent.name in SLOW_FIRST:
        item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(path.name, f"{path.parent.name}/{path.stem}")))


def pytest_collection_modifyitems(config, items):
    """The longest modules first, then the e2e and integration groups, then the unit tests: the
    order xdist hands the modules out in (a long module started last would be the suite's tail)."""
    longest = {name: index for index, name in enumerate(LONGEST)}
    rank = {folder: index for index, folder in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: (longest.get(f"{item.path.parent.name}/{item.path.name}", len(LONGEST)),
                                 rank.get(item.path.parent.name, len(SLOW_FIRST))))


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` in the order above, with the ``SHARED_GROUPS`` modules as one unit.

    xdist's own loadfile scheduler re-sorts the modules by their number of tests (its default
    ``--loadscope-reorder``), which handed the e2e scheduler module (3 tests, the longest) out at
    96 % of the suite, after 30 minutes on a loaded machine: the suite's tail was its longest
    module. It also knows nothing of ``SHARED_GROUPS``, so each worker could build the
    ``monitored_store`` (two daily runs). Other ``--dist`` modes keep xdist's schedulers."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class InOrder(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return SHARED_GROUPS.get(module.rsplit("/", 1)[-1], module)

    config.option.loadscopereorder = False
    return InOrder(config, log)


@pytest.fixture
def smtp_inbox():
    """A real SMTP server (aiosmtpd) on loopback; yields (port, [(recipients, message)])."""
    from support.channels import smtp_inbox

    with smtp_inbox() as inbox:
        yield inbox


@pytest.fixture
def slack_endpoint():
    """A Slack incoming-webhook endpoint on loopback (``support.channels.SlackEndpoint``)."""
    from support.channels import SlackEndpoint

    with SlackEndpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the whole session, stopped at the end even on failure."""
    server = ThrowawayPostgres().start()
    atexit.register(server.stop)  # also on an interrupted session
    try:
        yield server
    finally:
        server.stop()


_database_numbers = itertools.count()


@pytest.fixture
def pg_url(postgres) -> str:
    """URL of a fresh, empty database on the session server (for the tests of migrations)."""
    return postgres.create_database(f"test_{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture(scope="session")
def migrated_template(postgres) -> str:
    """A database migrated once to the latest revision; ``feedback_url`` copies it (a copy is
    ~50 ms, a migration several hundred)."""
    from self_learning.store import FeedbackStore

    url = postgres.create_database("store_template")
    store = FeedbackStore.from_url(url)
    store.ensure_schema()
    store.engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template without connections
    return "store_template"


@pytest.fixture
def feedback_url(postgres, migrated_template) -> str:
    """URL of a fresh database at the latest migration: a copy of the template."""
    return postgres.create_database(f"test_{os.getpid()}_{next(_database_numbers)}", template=migrated_template)


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory):
    """An SQLite store file migrated once; the SQLite ``store`` copies it."""
    from self_learning.store import FeedbackStore

    path = tmp_path_factory.mktemp("sqlite-template") / "feedback.db"
    store = FeedbackStore.from_url(f"sqlite:///{path}")
    store.ensure_schema()
    store.engine.dispose()
    return path


@pytest.fixture(scope="session")
def airflow_db():
    """The isolated Airflow metadata database, created on first use (about 5 s)."""
    from airflow.utils import db

    db.resetdb()
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def dag_bag(airflow_db):
    """The DAGs of ``dags/``, parsed once; their param defaults recorded before any run."""
    from airflow.dag_processing.dagbag import DagBag
    from support.scenarios import PARAM_DEFAULTS

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    for dag_id, dag in bag.dags.items():
        PARAM_DEFAULTS[dag_id] = dag.params.dump()
    return bag


@pytest.fixture(params=["postgres", "sqlite"])
def store(request, tmp_path):
    """A fresh, migrated store on each backend: the throwaway PostgreSQL and an SQLite file."""
    from self_learning.store import FeedbackStore

    if request.param == "postgres":
        url = request.getfixturevalue("feedback_url")
    else:
        path = tmp_path / "feedback.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_file"), path)
        url = f"sqlite:///{path}"
    feedback = FeedbackStore.from_url(url)
    feedback.ensure_schema()  # a no-op on the copy: it is at the latest revision
    return feedback


@pytest.fixture
def feedback_db(feedback_url, monkeypatch):
    """A fresh store that the DAGs reach through the ``feedback_db`` connection."""
    from self_learning.store import FeedbackStore

    monkeypatch.setenv("AIRFLOW_CONN_FEEDBACK_DB", feedback_url)
    store = FeedbackStore.from_url(feedback_url)
    store.ensure_schema()
    return store


@pytest.fixture
def fresh_runs(dag_bag):
    """No DAG runs left in the metadata DB by earlier tests (a triggered run id is per request and
    window, and the tests reuse windows)."""
    from support.scenarios import clear_dag_runs

    clear_dag_runs()


@pytest.fixture(scope="session")
def monitored_store_url(postgres) -> str:
    return postgres.create_database("monitored")


@pytest.fixture(scope="session")
def monitored_store(monitored_store_url, dag_bag, tmp_path_factory):
    """A store as the loop leaves it: two daily runs (``scenarios.MONITORED_DAYS``) on a
    feature-drift scenario, then a champion and a running A/B test for ctr_predictor. The hook
    classifier is served as a multiclass model and monitored too (``MONITORED_MULTICLASS``: its
    per-class figures on the page, in /metrics and the dashboards; the regressors' rows are the same
    either way, the generator draws them first). Read-only for the tests that share it (the web
    app, the Grafana dashboards)."""
    from self_learning.store import FeedbackStore
    from self_learning.synthetic import Scenario
    from support.scenarios import MONITORED_DAYS, MONITORED_MODELS, MONITORED_MULTICLASS, clear_dag_runs, load, run

    store = FeedbackStore.from_url(monitored_store_url)
    store.ensure_schema()
    end = MONITORED_DAYS[-1]
    load(store, Scenario(days=45, rows_per_day=200, seed=31, end=end, feature_drift_day=40, multiclass_hooks=True),
         interval_end=MONITORED_DAYS[0])
    clear_dag_runs()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_FEEDBACK_DB", monitored_store_url)
        patch.setenv("AIRFLOW_VAR_SELF_LEARNING_REPORT_ROOT", f"file://{tmp_path_factory.mktemp('reports')}")
        for day in MONITORED_DAYS:
            run(dag_bag.get_dag("self_learning_daily"), end=day, models=[*MONITORED_MODELS, MONITORED_MULTICLASS])
    store.register_version("ctr_predictor", "v5", status="archived")
    store.promote("ctr_predictor", "v5")
    store.register_version("ctr_predictor", "v6")
    store.start_ab_test(test_id="ctr-v6", model="ctr_predictor", champion_version="v5", challenger_version="v6",
                        config={"n_star": 1000.0, "seed": "ctr-v6"}, started_at=end - timedelta(days=2))
    return store
