"""Outcomes are pulled by what has not been processed, not by the run's interval (issue 13, item 4):
the store's processed marks and source watermarks on PostgreSQL and SQLite, two processes
draining at once, and the daily DAG after two days without a run."""


from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from self_learning.store import FeedbackStore
from support.stores import DAY, NEXT_DAY, downgrade, prediction_frame, row_count


def _outcomes(store: FeedbackStore) -> dict[str, tuple[float, int]]:
    with store.engine.connect() as conn:
        return {pid: (value, revision) for pid, value, revision in conn.execute(
            sa.text("SELECT prediction_id, actual_value, revision FROM outcomes"))}


def test_a_pull_takes_every_unprocessed_row_before_its_end_once(store):
    store.register_predictions(prediction_frame(3))
    store.enqueue_outcomes([
        {"prediction_id": "p0", "actual_value": 1.0, "received_at": DAY - timedelta(days=2)},  # a missed day
        {"prediction_id": "p0", "actual_value": 1.5, "received_at": DAY + timedelta(hours=2)},  # its correction
        {"prediction_id": "ghost", "actual_value": 2.0, "received_at": DAY + timedelta(hours=3)},
        {"prediction_id": "p1", "actual_value": 3.0, "received_at": NEXT_DAY},  # after the run's end
    ])
    pulled = store.pull_outcome_inbox(NEXT_DAY)
    assert (pulled.received, pulled.inserted, pulled.corrected, pulled.unchanged) == (3, 2, 1, 0)
    assert pulled.prediction_ids == ("p0", "ghost") and pulled.oldest_received_at == DAY - timedelta(days=2)
    assert _outcomes(store) == {"p0": (1.5, 1), "ghost": (2.0, 1)}  # the latest value, recorded once
    assert store.count_unprocessed_outcomes() == 1 and store.count_unprocessed_outcomes(NEXT_DAY) == 0

    again = store.pull_outcome_inbox(NEXT_DAY)  # a re-run of the day finds nothing and changes nothing
    assert (again.received, again.prediction_ids, again.oldest_received_at) == (0, (), None)
    assert _outcomes(store) == {"p0": (1.5, 1), "ghost": (2.0, 1)}

    # a row delivered late with an old arrival time is still taken by the next pull
    store.enqueue_outcomes([{"prediction_id": "p2", "actual_value": 4.0, "received_at": DAY}])
    later = store.pull_outcome_inbox(NEXT_DAY + timedelta(days=1))
    assert later.prediction_ids == ("p2", "p1") and later.inserted == 2
    assert store.count_unprocessed_outcomes() == 0 and row_count(store, "outcome_inbox") == 5
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outcome_inbox WHERE processed_at IS NULL")).scalar() == 0


def test_a_pulled_correction_keeps_the_old_value_in_the_history(store):
    store.enqueue_outcomes([{"prediction_id": "p0", "actual_value": 1.0, "received_at": DAY}])
    store.pull_outcome_inbox(NEXT_DAY)
    store.enqueue_outcomes([{"prediction_id": "p0", "actual_value": 2.0, "received_at": NEXT_DAY}])
    pulled = store.pull_outcome_inbox(NEXT_DAY + timedelta(days=1))
    assert (pulled.received, pulled.corrected) == (1, 1)
    assert _outcomes(store) == {"p0": (2.0, 2)}
    assert [h["actual_value"] for h in store.outcome_history_of("p0")] == [1.0]


def test_rejected_inbox_rows_are_marked_and_quarantined(store):
    store.register_predictions(prediction_frame(1))  # p0 served on DAY
    store.enqueue_outcomes([{"prediction_id": "p0", "actual_value": 1.0, "observed_at": DAY - timedelta(days=30),
                             "received_at": DAY + timedelta(hours=1)}])
    pulled = store.pull_outcome_inbox(NEXT_DAY)
    assert [(e.prediction_id, e.field) for e in pulled.rejected] == [("p0", "observed_at")]
    assert (pulled.received, pulled.inserted) == (1, 0) and _outcomes(store) == {}
    assert store.count_unprocessed_outcomes() == 0  # not retried every day
    assert row_count(store, "ingest_rejects") == 1


def test_until_must_be_an_aware_time(store):
    with pytest.raises(ValueError, match=r"^until:"):
        store.pull_outcome_inbox(datetime(2026, 11, 1))
    with pytest.raises(ValueError, match=r"^pulled_until:"):
        store.advance_outcome_source_watermark("conn:abc", datetime(2026, 11, 1))
    with pytest.raises(ValueError, match=r"^source:"):
        store.advance_outcome_source_watermark("", DAY)


def test_source_watermarks_only_move_forward(store):
    assert store.outcome_source_watermark("warehouse:1") is None
    assert store.advance_outcome_source_watermark("warehouse:1", NEXT_DAY) == NEXT_DAY
    assert store.advance_outcome_source_watermark("warehouse:1", DAY) == NEXT_DAY  # re-run of an old interval
    assert store.advance_outcome_source_watermark("warehouse:1", NEXT_DAY + timedelta(days=2)) == \
        NEXT_DAY + timedelta(days=2)
    assert store.outcome_source_watermark("warehouse:1") == NEXT_DAY + timedelta(days=2)
    assert store.outcome_source_watermark("warehouse:2") is None


def test_catch_up_start_of_an_interval_source():
    from self_learning.operators.outcomes import MAX_CATCH_UP, catch_up_start, source_key

    start, end = DAY, NEXT_DAY
    assert catch_up_start(start, end, None) == start  # first pull
    assert catch_up_start(start, end, start) == start  # on time
    assert catch_up_start(start, end, start - timedelta(days=2)) == start - timedelta(days=2)  # two missed days
    assert catch_up_start(start, end, end + timedelta(days=5)) == start  # a re-run of an old interval
    assert catch_up_start(start, end, start - timedelta(days=400)) == end - MAX_CATCH_UP  # capped
    assert source_key("wh", "SELECT 1") == source_key("wh", " SELECT 1\n") != source_key("wh", "SELECT 2")


def _drain_slowly(url: str, until: datetime, inside, results) -> None:
    """A second process: take the inbox, then hold its transaction open for 2 s."""
    draining = FeedbackStore.from_url(url)
    write = draining._write_outcomes

    def slow_write(conn, clean, **options):
        inside.set()
        time.sleep(2.0)
        return write(conn, clean, **options)

    draining._write_outcomes = slow_write
    pulled = draining.pull_outcome_inbox(until)
    results.put((pulled.received, pulled.prediction_ids))


def test_two_processes_draining_at_once_take_disjoint_rows_and_the_later_sees_all(feedback_url):
    store = FeedbackStore.from_url(feedback_url)  # PostgreSQL: SQLite has one writer at a time anyway
    store.ensure_schema()
    first = [{"prediction_id": f"a{i}", "actual_value": float(i), "received_at": DAY + timedelta(seconds=i)}
             for i in range(2_000)]
    store.enqueue_outcomes(first)
    context = multiprocessing.get_context("spawn")
    inside, results = context.Event(), context.Queue()
    other = context.Process(target=_drain_slowly, args=(feedback_url, NEXT_DAY, inside, results))
    other.start()
    try:
        assert inside.wait(60), "the other process never took the inbox"
        store.enqueue_outcomes([{"prediction_id": f"b{i}", "actual_value": -1.0, "received_at": DAY}
                                for i in range(300)])  # arrived while the other run holds its rows
        mine = store.pull_outcome_inbox(NEXT_DAY)
        recorded_when_mine_returned = len(_outcomes(store))
        theirs_received, theirs = results.get(timeout=60)
    finally:
        other.join(60)
    assert other.exitcode == 0
    assert (theirs_received, mine.received) == (2_000, 300)
    assert set(theirs) == {r["prediction_id"] for r in first} and set(mine.prediction_ids) == {
        f"b{i}" for i in range(300)}
    assert recorded_when_mine_returned == 2_300  # it waited for the other's commit: nothing received is missing
    stored = _outcomes(store)
    assert len(stored) == 2_300 and all(revision == 1 for _, revision in stored.values())
    assert store.count_unprocessed_outcomes() == 0 and store.pull_outcome_inbox(NEXT_DAY).received == 0


def test_migration_0006_marks_what_the_interval_pull_recorded(store):
    """Upgrading a store the interval pull used: an inbox row whose outcome was recorded after it
    arrived counts as processed, one that arrived on a day without a run does not."""

    downgrade(store, "0005")
    received_long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    with store.engine.begin() as conn:
        for pid, received in (("pulled", received_long_ago), ("missed", datetime(2100, 1, 1, tzinfo=UTC))):
            conn.execute(sa.text("INSERT INTO outcome_inbox (prediction_id, actual_value, observed_at, received_at) "
                                 "VALUES (:pid, 1.0, :at, :at)"), {"pid": pid, "at": received})
            conn.execute(sa.text("INSERT INTO outcomes (prediction_id, actual_value, observed_at) "
                                 "VALUES (:pid, 1.0, :at)"), {"pid": pid, "at": received})
    store.ensure_schema()
    with store.engine.connect() as conn:
        waiting = conn.execute(sa.text("SELECT prediction_id FROM outcome_inbox WHERE processed_at IS NULL")).all()
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("outcome_inbox")}
    assert waiting == [("missed",)] and "ix_outcome_inbox_unprocessed" in indexes
    downgrade(store, "0005")
    with store.engine.connect() as conn:
        assert "processed_at" not in {c["name"] for c in sa.inspect(conn).get_columns("outcome_inbox")}
        assert not sa.inspect(conn).has_table("outcome_source_watermarks")
    store.ensure_schema()


# -- the daily DAG after two days without a run ----------------------------------------------------

RUN_BEFORE_DOWNTIME = datetime(2026, 10, 29, tzinfo=UTC)
NEXT_RUN = RUN_BEFORE_DOWNTIME + timedelta(days=3)  # the runs of Oct 30 and 31 never happened


@pytest.mark.usefixtures("fresh_runs")
def test_outcomes_from_two_days_without_a_run_reach_outcomes_on_the_next_run(dag_bag, feedback_db, tmp_path,
                                                                            monkeypatch):
    from self_learning.synthetic import Scenario, generate
    from support.scenarios import load, run

    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_REPORT_ROOT", f"file://{tmp_path / 'reports'}")
    scenario = Scenario(days=40, rows_per_day=60, seed=13, end=NEXT_RUN, models=("roas_predictor",))
    load(feedback_db, scenario, interval_end=RUN_BEFORE_DOWNTIME)
    arriving = generate(scenario).outcomes_received(RUN_BEFORE_DOWNTIME, NEXT_RUN)  # three days' worth
    assert not feedback_db.enqueue_outcomes(arriving).rejected
    daily = dag_bag.get_dag("self_learning_daily")

    run(daily, end=RUN_BEFORE_DOWNTIME, models=["roas_predictor"])
    assert feedback_db.count_unprocessed_outcomes() == len(arriving)  # none of them had arrived yet
    missed_days = arriving[arriving["received_at"] < NEXT_RUN - timedelta(days=1)]
    assert len(missed_days) > 50

    run(daily, end=NEXT_RUN, models=["roas_predictor"])
    assert feedback_db.count_unprocessed_outcomes() == 0
    stored = _outcomes(feedback_db)
    latest = arriving.sort_values("received_at", kind="stable").drop_duplicates("prediction_id", keep="last")
    assert {pid: stored.get(pid, (None,))[0] for pid in latest["prediction_id"]} == dict(
        zip(latest["prediction_id"], latest["actual_value"].astype(float), strict=True))
    window = feedback_db.read_window("roas_predictor", NEXT_RUN - timedelta(days=3), NEXT_RUN, with_ids=True,
                                     features=False)
    assert set(missed_days["prediction_id"]) & set(window["prediction_id"])  # joined, labelled in the window

    with feedback_db.engine.connect() as conn:
        recorded = conn.execute(sa.text("SELECT prediction_id, recorded_at, revision FROM outcomes")).all()
    run(daily, end=NEXT_RUN, models=["roas_predictor"])  # a re-run changes nothing
    with feedback_db.engine.connect() as conn:
        assert sorted(conn.execute(sa.text("SELECT prediction_id, recorded_at, revision FROM outcomes")).all()) \
            == sorted(recorded)


def test_an_interval_source_is_queried_from_its_watermark_after_missed_days(feedback_db, feedback_url,
                                                                           monkeypatch):
    from self_learning.operators import PullOutcomesOperator

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", feedback_url)  # the store's own database stands in for a warehouse
    with feedback_db.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE labels (prediction_id text, actual_value float8, arrived timestamptz)"))
        conn.execute(sa.text("INSERT INTO labels VALUES (:pid, :value, :at)"), [
            {"pid": f"d{day}-{i}", "value": float(i), "at": DAY + timedelta(days=day, hours=i)}
            for day in range(4) for i in range(3)])
    pull = PullOutcomesOperator(task_id="pull_outcomes", source_conn_id="warehouse", source_sql=(
        "SELECT prediction_id, actual_value FROM labels WHERE arrived >= :start AND arrived < :end"))

    def run_day(end: datetime) -> dict:
        return pull.execute({"params": {}, "data_interval_start": end - timedelta(days=1), "data_interval_end": end})

    first = run_day(NEXT_DAY)  # the day ending Nov 2: labels of day 0
    assert (first["received"], first["pulled_from"]) == (3, DAY.isoformat())
    after_downtime = run_day(NEXT_DAY + timedelta(days=3))  # Nov 3 and 4 had no run
    assert (after_downtime["received"], after_downtime["pulled_from"]) == (9, NEXT_DAY.isoformat())
    assert set(_outcomes(feedback_db)) == {f"d{day}-{i}" for day in range(4) for i in range(3)}
    again = run_day(NEXT_DAY)  # re-running an old interval re-reads it; the watermark stays
    assert (again["received"], again["recorded"], again["unchanged"]) == (3, 0, 3)
    key = next(iter(_watermarks(feedback_db)))
    assert _watermarks(feedback_db) == {key: NEXT_DAY + timedelta(days=3)} and key.startswith("warehouse:")


def _watermarks(store: FeedbackStore) -> dict[str, datetime]:
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT source, pulled_until FROM outcome_source_watermarks")).all())
