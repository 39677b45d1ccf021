"""Outcome sources on both stores: the inbox, a query on a connection and files under a prefix,
each behind ``OutcomeSource.pull``; the file source reads each file in the run whose window holds
its modification time, and catches up on missed days from its watermark."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from self_learning.outcome_sources import (
    FileSource,
    InboxSource,
    SqlQuerySource,
    select_source,
)

DAY = timedelta(days=1)
END = datetime(2026, 11, 3, tzinfo=UTC)


def _drop(folder, name: str, rows: list[tuple[str, float]], modified: datetime) -> None:
    path = folder / name
    pd.DataFrame(rows, columns=["prediction_id", "actual_value"]).to_csv(path, index=False)
    os.utime(path, (modified.timestamp(), modified.timestamp()))


def test_select_source_by_configuration():
    assert isinstance(select_source(), InboxSource)
    assert isinstance(select_source("crm", "select 1"), SqlQuerySource)
    assert isinstance(select_source(None, "", "file:///x"), FileSource)
    with pytest.raises(ValueError, match=r"^source_conn_id: required"):
        select_source(None, "select 1")
    with pytest.raises(ValueError, match=r"^source_uri: set either"):
        select_source("c", "select 1", "file:///x")


def test_files_are_read_by_modification_time_and_missed_days_are_caught_up(store, tmp_path):
    folder = tmp_path / "outcomes"
    folder.mkdir()
    source = FileSource(f"file://{folder}")
    _drop(folder, "day1.csv", [("p1", 1.0), ("p2", 2.0)], END - 2 * DAY + timedelta(hours=3))
    _drop(folder, "notes.txt", [("p9", 9.0)], END - 2 * DAY + timedelta(hours=3))  # not an outcome file
    first = source.pull(store, END - 3 * DAY, END - 2 * DAY + timedelta(hours=12))
    assert (first.report.received, sorted(first.prediction_ids)) == (2, ["p1", "p2"])
    assert first.source == f"files under 'file://{folder}'"

    # a day without a run: the file dropped on it is read by the next run, from the watermark
    _drop(folder, "day2.csv", [("p3", 3.0), ("p1", 1.5)], END - DAY + timedelta(hours=1))
    _drop(folder, "day3.csv", [("p4", 4.0)], END - timedelta(hours=1))
    caught_up = source.pull(store, END - DAY, END)
    assert caught_up.pulled_from == END - 2 * DAY + timedelta(hours=12)
    assert sorted(caught_up.prediction_ids) == ["p1", "p3", "p4"]
    assert (caught_up.report.received, caught_up.report.corrected) == (3, 1)

    rerun = source.pull(store, END - DAY, END)  # a re-run of the interval reads the same files, changes nothing
    assert rerun.pulled_from == END - DAY and sorted(rerun.prediction_ids) == ["p1", "p3", "p4"]
    assert (rerun.report.inserted, rerun.report.corrected, rerun.report.unchanged) == (0, 0, 3)


def test_a_file_without_the_columns_fails_naming_the_source(store, tmp_path):
    (tmp_path / "bad.csv").write_text("id,value\np1,1\n")
    os.utime(tmp_path / "bad.csv", ((END - DAY / 2).timestamp(),) * 2)
    with pytest.raises(ValueError, match=r"^files under .*: the outcomes must have the columns \['actual_value'"):
        FileSource(f"file://{tmp_path}").pull(store, END - DAY, END)


def test_an_empty_prefix_records_nothing_and_still_moves_the_watermark(store, tmp_path):
    source = FileSource(f"file://{tmp_path}")
    pulled = source.pull(store, END - DAY, END)
    assert pulled.report.received == 0
    assert store.outcome_source_watermark(source.key()) == END
    assert source.pull(store, END, END + DAY).pulled_from == END
