"""Concurrent writers on one store lose nothing (issue 13, item 1).

Serving apps run many worker processes that write predictions and outcomes at once, and the same
id can arrive from two of them (a retried request, two pods replaying a queue). Here 4 processes
(spawned, each with its own engine) start every round together behind a barrier and send
overlapping ids in different orders, each payload naming its sender. The bulk calls use 2 writer
threads each, so up to 8 transactions run at once. Afterwards:

- no call raised and nothing was rejected except conflicts;
- every id is stored exactly once, with the payload of the one writer that counted it inserted;
  every other sender counted it ``unchanged`` (same payload) or got a ``prediction_id`` conflict;
- outcome corrections form one chain per id: revisions 1..n in ``outcome_history`` without gaps
  or repeats (two writers correcting from the same revision would repeat one), and every writer's
  ``corrected`` count matches a history row.

Before the staging-table ingest (commit 6e55ea6), these failed: bulk batches raised
``UniqueViolation`` and rolled back whole, leaving ids stored by nobody.
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning.store import ConflictError, FeedbackStore

WRITERS = 4
ROUNDS = 3
IDS_PER_ROUND = 600  # ids of a round; each writer sends a random 2/3 of them
SINGLE_IDS = 40  # ids every writer sends one call at a time
DAY = datetime(2026, 11, 1, tzinfo=UTC)
OBSERVED = DAY + timedelta(hours=6)
TIMEOUT_SECONDS = 240


def _is_shared(number: int) -> bool:
    """A third of the ids carry the same payload from every writer (re-sends: ``unchanged``); the
    others a payload naming the writer (a conflict for every writer but the first)."""
    return number % 3 == 0


def _numbers_sent(kind: str, round_number: int, writer: int) -> list[int]:
    rng = random.Random(f"{kind}-{round_number}-{writer}")
    numbers = rng.sample(range(IDS_PER_ROUND), IDS_PER_ROUND * 2 // 3)
    return numbers  # random order: writers lock overlapping ids in different orders


def _prediction_id(round_number: int, number: int) -> str:
    return f"r{round_number}-{number:04d}"


def _prediction_frame(round_number: int, writer: int) -> pd.DataFrame:
    numbers = _numbers_sent("predictions", round_number, writer)
    return pd.DataFrame({
        "prediction_id": [_prediction_id(round_number, n) for n in numbers],
        "model": "roas_predictor",
        "model_version": ["shared" if _is_shared(n) else f"writer-{writer}" for n in numbers],
        "predicted_value": [float(n) if _is_shared(n) else 1000.0 * (writer + 1) + n for n in numbers],
        "served_at": DAY,
        "spend": [float(n) for n in numbers],
        "platform": ["meta" if _is_shared(n) else f"writer-{writer}" for n in numbers],
    })


def _outcome_value(number: int, writer: int) -> float:
    return float(number) if _is_shared(number) else 1000.0 * (writer + 1) + number


def _outcome_frame(round_number: int, writer: int) -> pd.DataFrame:
    """Outcomes of the round's predictions, and as many orphans (ids no prediction has)."""
    numbers = _numbers_sent("outcomes", round_number, writer)
    ids = [_prediction_id(round_number, n) if n % 2 else f"orphan-{_prediction_id(round_number, n)}"
           for n in numbers]
    return pd.DataFrame({"prediction_id": ids, "actual_value": [_outcome_value(n, writer) for n in numbers],
                         "observed_at": OBSERVED})


def _summary(report) -> dict:
    return {"inserted": report.inserted, "unchanged": report.unchanged, "corrected": report.corrected,
            "conflicts": sorted(e.prediction_id for e in report.rejected if e.field == "prediction_id"),
            "other_rejects": [(e.prediction_id, e.field, e.reason) for e in report.rejected
                              if e.field != "prediction_id"]}


def _writer(url: str, writer: int, barrier, results) -> None:
    """One serving process: every round, bulk predictions then bulk outcomes; then single calls."""
    store = FeedbackStore.from_url(url)
    outcome: dict = {"writer": writer, "errors": [], "predictions": {}, "outcomes": {}, "single": {}}
    try:
        for round_number in range(ROUNDS):
            for kind, send in (("predictions", lambda r: store.register_predictions(
                    _prediction_frame(r, writer), batch_size=100)),
                               ("outcomes", lambda r: store.record_outcomes(_outcome_frame(r, writer),
                                                                            batch_size=100))):
                barrier.wait(TIMEOUT_SECONDS)
                try:
                    outcome[kind][round_number] = _summary(send(round_number))
                except Exception as error:  # a failed batch: what the test is about
                    outcome["errors"].append(f"{kind} round {round_number}: {error!r}")
        numbers = random.Random(f"single-{writer}").sample(range(SINGLE_IDS), SINGLE_IDS)
        barrier.wait(TIMEOUT_SECONDS)
        for number in numbers:
            pid = f"single-{number:03d}"
            try:
                store.register_prediction(
                    "roas_predictor", _outcome_value(number, writer), {"spend": float(number)}, prediction_id=pid,
                    model_version="shared" if _is_shared(number) else f"writer-{writer}", served_at=DAY)
                outcome["single"][pid] = {"prediction": "stored or unchanged"}
            except ConflictError:
                outcome["single"][pid] = {"prediction": "conflict"}
            except Exception as error:
                outcome["errors"].append(f"register_prediction {pid}: {error!r}")
                outcome["single"][pid] = {}
        barrier.wait(TIMEOUT_SECONDS)
        for number in numbers:
            pid = f"single-{number:03d}"
            try:
                outcome["single"][pid]["outcome"] = store.record_outcome(
                    pid, _outcome_value(number, writer), observed_at=OBSERVED)
            except Exception as error:
                outcome["errors"].append(f"record_outcome {pid}: {error!r}")
    except Exception as error:  # a broken barrier or set-up: reported, not hung
        outcome["errors"].append(f"writer {writer}: {error!r}")
        barrier.abort()
    finally:
        store.engine.dispose()
        results.put(outcome)


def _run_writers(url: str) -> dict[int, dict]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(WRITERS), context.Queue()
    processes = [context.Process(target=_writer, args=(url, w, barrier, results)) for w in range(WRITERS)]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=TIMEOUT_SECONDS) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return {o["writer"]: o for o in outcomes}


def _stored(store: FeedbackStore, query: str) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.text(query)).mappings()]


@pytest.fixture(params=["postgres", "sqlite"])
def store_url(request, tmp_path) -> str:
    url = request.getfixturevalue("feedback_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'f.db'}"
    FeedbackStore.from_url(url).ensure_schema()
    return url


def test_concurrent_writers_store_every_id_once_with_the_first_writers_payload(store_url):
    by_writer = _run_writers(store_url)
    store = FeedbackStore.from_url(store_url)
    assert [e for w in by_writer.values() for e in w["errors"]] == []  # no batch, no call raised
    for writer in by_writer.values():
        for report in (*writer["predictions"].values(), *writer["outcomes"].values()):
            assert report["other_rejects"] == []

    # Predictions: one row per id, naming the writer that counted it inserted.
    stored = {row["prediction_id"]: row for row in _stored(
        store, "SELECT prediction_id, model_version, predicted_value FROM predictions")}
    for round_number in range(ROUNDS):
        sent = {w: set(_prediction_frame(round_number, w)["prediction_id"]) for w in by_writer}
        every_id = set().union(*sent.values())
        assert every_id <= stored.keys()  # nothing lost
        reports = {w: by_writer[w]["predictions"][round_number] for w in by_writer}
        assert sum(r["inserted"] for r in reports.values()) == len(every_id)  # each id inserted exactly once
        for w, report in reports.items():
            mine = {pid for pid in sent[w] if stored[pid]["model_version"] == f"writer-{w}"}
            contested = {pid for pid in sent[w] if stored[pid]["model_version"] != "shared"}
            assert set(report["conflicts"]) == contested - mine  # someone else's payload won
            assert len(report["conflicts"]) == len(contested - mine)
            assert report["inserted"] + report["unchanged"] == len(sent[w]) - len(contested - mine)
            assert report["inserted"] >= len(mine)  # its own payload is stored because it inserted it
        shared_ids = {pid for pid in every_id if stored[pid]["model_version"] == "shared"}
        assert sum(r["inserted"] - len({p for p in sent[w] if stored[p]["model_version"] == f"writer-{w}"})
                   for w, r in reports.items()) == len(shared_ids)

    # Outcomes: one row per id; corrections form one unbroken chain per id.
    current = {row["prediction_id"]: row for row in _stored(
        store, "SELECT prediction_id, actual_value, revision FROM outcomes")}
    history = defaultdict(list)
    for row in _stored(store, "SELECT prediction_id, actual_value, revision FROM outcome_history "
                              "ORDER BY prediction_id, revision"):
        history[row["prediction_id"]].append(row)
    for round_number in range(ROUNDS):
        frames = {w: _outcome_frame(round_number, w) for w in by_writer}
        every_id = set().union(*(set(f["prediction_id"]) for f in frames.values()))
        assert every_id <= current.keys()
        reports = {w: by_writer[w]["outcomes"][round_number] for w in by_writer}
        assert sum(r["inserted"] for r in reports.values()) == len(every_id)
        for w, report in reports.items():
            assert report["inserted"] + report["corrected"] + report["unchanged"] == len(frames[w])
        assert sum(r["corrected"] for r in reports.values()) == sum(len(history[pid]) for pid in every_id)
        sent_values = defaultdict(set)
        for frame in frames.values():
            for pid, value in zip(frame["prediction_id"], frame["actual_value"], strict=True):
                sent_values[pid].add(value)
        for pid in every_id:
            chain = history[pid]
            assert [h["revision"] for h in chain] == list(range(1, current[pid]["revision"]))
            assert {h["actual_value"] for h in chain} | {current[pid]["actual_value"]} <= sent_values[pid]
            if len(sent_values[pid]) == 1:  # the same value from everyone is never a correction
                assert chain == []

    # Single calls: register_prediction and record_outcome from 4 processes at once.
    singles = {row["prediction_id"]: row for row in _stored(
        store, "SELECT prediction_id, model_version FROM predictions WHERE prediction_id LIKE 'single-%'")}
    assert len(singles) == SINGLE_IDS
    for w, writer in by_writer.items():
        conflicts = {pid for pid, result in writer["single"].items() if result["prediction"] == "conflict"}
        assert conflicts == {pid for pid, row in singles.items() if row["model_version"] not in ("shared",
                                                                                                 f"writer-{w}")}
    results = Counter((pid, r["outcome"]) for writer in by_writer.values() for pid, r in writer["single"].items())
    for pid in singles:
        assert results[(pid, "recorded")] == 1
        assert results[(pid, "corrected")] == len(history[pid]) == current[pid]["revision"] - 1


def test_a_batch_picked_as_deadlock_victim_is_re_run_whole(pg_url, caplog):
    """A real deadlock: another transaction holds id ``y`` and then wants ``x``, which the batch
    (``x`` for one model, then ``y`` for another) inserted first. PostgreSQL aborts the batch's
    transaction (the other side's deadlock_timeout is set high, so the batch is the one that
    detects it); the batch is re-run, finds both ids stored with its own payload, and reports
    them unchanged instead of raising."""
    store = FeedbackStore.from_url(pg_url)
    store.ensure_schema()
    rows = pd.DataFrame({"prediction_id": ["x", "y"], "model": ["roas_predictor", "ctr_predictor"],
                         "model_version": "v1", "predicted_value": 1.0, "served_at": DAY})
    insert = sa.text("INSERT INTO predictions (prediction_id, model, model_version, predicted_value, served_at, "
                     "num_features, cat_features) VALUES (:pid, :model, 'v1', 1.0, :served, '\\x', '{}')")
    holding_y, other_failed = threading.Event(), []

    def other_writer():
        try:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("SET LOCAL deadlock_timeout = '60s'")
                conn.execute(insert, {"pid": "y", "model": "ctr_predictor", "served": DAY})
                holding_y.set()
                _wait_until_a_backend_waits_for_a_lock(store)  # the batch inserted x and waits for y
                conn.execute(insert, {"pid": "x", "model": "roas_predictor", "served": DAY})
        except Exception as error:
            other_failed.append(error)

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert holding_y.wait(30)
    with caplog.at_level(logging.INFO, logger="self_learning.store.ingest"):
        report = store.register_predictions(rows)
    thread.join(30)
    assert other_failed == []
    assert (report.inserted, report.unchanged, report.rejected) == (0, 2, [])
    assert any("deadlock victim" in record.getMessage() for record in caplog.records)
    assert _stored(store, "SELECT prediction_id FROM predictions ORDER BY 1") == [{"prediction_id": "x"},
                                                                                {"prediction_id": "y"}]


def _wait_until_a_backend_waits_for_a_lock(store: FeedbackStore, timeout: float = 30.0) -> None:
    """Until another session is blocked on a row lock (a fixed sleep made the deadlock depend on the
    machine's load: a late batch found both ids stored and no deadlock happened)."""
    deadline = time.monotonic() + timeout
    with store.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                           "AND pid <> pg_backend_pid()").scalar_one()
            if waiting:
                return
            conn.rollback()  # pg_stat_activity is a snapshot per transaction
            time.sleep(0.02)
    raise AssertionError("no session waited for a lock within the timeout")
