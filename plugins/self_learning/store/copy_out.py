"""PostgreSQL's window read: ``COPY (SELECT ...) TO STDOUT``, numbers in binary, text as CSV.

Called by the PostgreSQL dialect's ``read_window``; a million-row window with 20 typed feature
columns is read without parsing a float as text (bench/ingest_bench.py).
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from . import codec
from .rows import PROBABILITY_PREFIX

_POSTGRES_EPOCH_US = int(codec.POSTGRES_EPOCH.astype(np.int64))  # 2000-01-01 in microseconds since 1970
_NO_TIME = -(2**63)  # -infinity's binary form, and numpy's NaT; sentinels keep binary rows fixed-width
_NO_LABEL = -(2**31)
TEXT_COLUMNS = ("prediction_id", "model_version", "unit_id", "predicted_class", "actual_label")
_OUTCOME_TEXT = ("actual_label",)  # text columns of the outcome: the text stream then reads the join
ID_COLUMNS = ("prediction_id", "unit_id")  # unique per row: plain text, not categorical
# Set in each window read's transaction (and in its EXPLAIN, ``explain_window_read``):
# - a million-row hash join spills to disk at the default 4 MB work_mem (measured: 2.4 s -> 1.2 s);
# - JIT compiles each read's expressions again (0.8-0.9 s per query measured at 700k rows) and the
#   read is a scan with no expensive expression to gain from it;
# - no hash or merge join: both read every stored outcome, so a day's read grew with the history
#   (a 1-day window of 100k rows: 0.44 s with the day alone stored, 0.69 s with 10 days; EXPLAIN
#   showed a Seq Scan of all 1M outcomes and at 9.7M, issue 18, a 738 MB hash table). A nested loop
#   looks each window row's outcome up in ``outcomes_pkey``: 4 buffer hits per row, whatever the
#   history (bench/window_read_bench.py; test_window_reads.py checks the plan). With planner
#   statistics of a window the size of all history the hash join would be ~2x faster; a store
#   holds far more history than one window, and a read must not grow with it.
WINDOW_READ_SETTINGS = (
    "SET LOCAL work_mem = '256MB'",
    "SET LOCAL jit = off",
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
)


def read_window_by_copy(url: sa.URL, conditions, labelled_only: bool, numeric: list[str], categorical: list[str],
                        text_columns: list[str], classes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Two COPYs of the same rows in one snapshot, matched on ``row_id``.

    Numbers travel as fixed-width binary rows (timestamps, values, the feature vector padded
    to the registry's width) that numpy reads without parsing; only the text columns
    (version, categories, ids) go through the CSV parser. psycopg 3 hands COPY output to
    Python one row at a time (~8 us a row), psycopg2's ``copy_expert`` drains it in C, so
    reads use short-lived psycopg2 connections, one per stream, running concurrently.
    Values are bound client-side by psycopg2 (``mogrify``), never pasted as text.

    With ``classes`` (a multiclass model), the binary rows also carry each row's class
    probabilities padded with 0 to the class list's width (a vector stored before the list grew
    gives the appended classes 0), returned as one ``proba_<class>`` column per class.
    """
    statements, params = window_statements(conditions, labelled_only, numeric, categorical, text_columns, classes)
    width = len(numeric)
    _parallel_copy_out(url, statements, params)
    (_, _, binary), (_, _, csv) = statements
    numbers = _decode_fixed_rows(binary.getbuffer(), width, len(classes or ()))
    csv.seek(0)
    names = [*text_columns, *categorical]
    # Text is parsed straight into categoricals (a window repeats few distinct values), and
    # the "=" prefix is cut from the categories, not from every row.
    kinds = {position: str if name in ID_COLUMNS else "category" for position, name in enumerate(names, start=1)}
    raw = pd.read_csv(csv, header=None, na_filter=False, dtype={0: np.int64, **kinds}) \
        if csv.getbuffer().nbytes else None
    text_keys = raw[0].to_numpy() if raw is not None else np.empty(0, dtype=np.int64)
    number_keys = numbers["key"].astype(np.int64)
    if np.array_equal(text_keys, number_keys):  # both streams with the same rows in one order
        text_index = np.arange(len(number_keys))
    else:  # row_id is unique: find each numbers row in the text stream
        sorter = np.argsort(text_keys)
        text_index = sorter[np.minimum(np.searchsorted(text_keys, number_keys, sorter=sorter),
                                       max(len(text_keys) - 1, 0))] if len(text_keys) else sorter
        if not np.array_equal(text_keys[text_index], number_keys):
            raise RuntimeError("window read: the two COPY streams returned different rows")
    take_numbers = np.argsort(numbers["served"].astype(np.int64), kind="stable")  # oldest first
    take_text = text_index[take_numbers]
    frame = pd.DataFrame({name: _strip_marker(raw[position].take(take_text)) if raw is not None
                          else pd.Series(dtype=kinds[position]) for position, name in enumerate(names, start=1)})
    for column, field in (("served_at", "served"), ("observed_at", "observed")):
        micros = numbers[field][take_numbers].astype(np.int64)
        stamps = np.where(micros == _NO_TIME, micros, micros + _POSTGRES_EPOCH_US).view("datetime64[us]")
        frame[column] = pd.Series(stamps).dt.tz_localize("UTC")
    for column in ("predicted_value", "actual_value", "business_value"):
        frame[column] = numbers[column][take_numbers].astype(np.float64)
    labels = pd.Series(numbers["label"][take_numbers].astype(np.int64))
    frame["predicted_label"] = labels.where(labels != _NO_LABEL).astype("Int64")
    if classes:
        probabilities = numbers["probabilities"][take_numbers].astype(np.float64)
        frame = pd.concat([frame, pd.DataFrame(probabilities, columns=[PROBABILITY_PREFIX + c for c in classes])],
                          axis=1)
    if not width:
        return frame
    # Gather whole rows of the big-endian block (a copy in the final order), then swap the
    # bytes in place: 15x faster than converting a strided view. The raw stream is released
    # before the frame is built (peak memory of big windows).
    values = numbers["vector"][take_numbers]
    del numbers
    statements.clear()
    binary.close()
    if not values.dtype.isnative:
        values = values.byteswap(inplace=True).view(values.dtype.newbyteorder("="))
    return pd.concat([frame, pd.DataFrame(values, columns=numeric, copy=False)], axis=1)

def window_statements(conditions, labelled_only: bool, numeric: list[str], categorical: list[str],
                      text_columns: list[str], classes: tuple[str, ...] | None = None
                      ) -> tuple[list[tuple[str, str, io.BytesIO]], dict]:
    """The two SELECTs of a window read (numbers in binary, text as CSV), each with its COPY
    format and an empty buffer, and their parameters (bound client-side)."""
    dialect = postgresql.psycopg2.dialect()
    where = sa.and_(*conditions).compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    source = "predictions JOIN outcomes" if labelled_only else "predictions LEFT JOIN outcomes"
    source += " ON outcomes.prediction_id = predictions.prediction_id"
    width = len(numeric)
    # Pad older, shorter vectors with NaN; cut a vector that grew after the registry was read.
    vector = ("CASE WHEN length(num_features) = 8 * %(width)s THEN num_features "
              "WHEN length(num_features) > 8 * %(width)s THEN substring(num_features FROM 1 FOR 8 * %(width)s) "
              "ELSE num_features || decode(repeat('7ff8000000000000', %(width)s - length(num_features) / 8), "
              "'hex') END")
    # timestamptz travels as its own binary form (microseconds since 2000-01-01); a missing
    # observed_at as -infinity, whose binary form is numpy's NaT.
    fixed = ["predictions.row_id", "predictions.served_at", "COALESCE(outcomes.observed_at, '-infinity')",
             "predicted_value",
             "COALESCE(actual_value, 'NaN')", f"COALESCE(predicted_label, {_NO_LABEL})",
             "COALESCE(outcomes.business_value, 'NaN')",
             *([vector] if width else []), *([_PADDED_PROBABILITIES] if classes else [])]
    # Every present text value gets a "=" prefix, so a NULL (an empty field) cannot be confused
    # with any value, "\\N" and "" included.
    texts = ["predictions.row_id",
             *(f"'=' || {'outcomes' if c in _OUTCOME_TEXT else 'predictions'}.{c}" for c in text_columns),
             *(f"'=' || (cat_features ->> %(cat_{i})s)" for i in range(len(categorical)))]
    params = dict(where.params, width=width, classes=len(classes or ()),
                  **{f"cat_{i}": key for i, key in enumerate(categorical)})
    # The text stream skips the join (its filter is on predictions alone): it may carry
    # unlabelled rows too, which the matching below drops; the join costs more than they do.
    statements = [
        (f"SELECT {', '.join(columns)} FROM {table} WHERE {where.string}", fmt, io.BytesIO())
        for columns, table, fmt in ((fixed, source, "binary"),
                                    (texts, source if set(text_columns) & set(_OUTCOME_TEXT) else "predictions", "csv"))
    ]
    return statements, params


def explain_window_read(url: sa.URL, statements: list[tuple[str, str, io.BytesIO]], params: dict,
                        analyze: bool = False) -> str:
    """The plan of a window read's numbers statement (the one joining outcomes) under the read's
    own settings, as PostgreSQL's text EXPLAIN."""
    import psycopg2  # PostgreSQL only

    connection = psycopg2.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        cursor = connection.cursor()
        for setting in WINDOW_READ_SETTINGS:
            cursor.execute(setting)
        select = statements[0][0]
        options = "ANALYZE, BUFFERS, SETTINGS" if analyze else "SETTINGS"  # SETTINGS: the ones changed
        cursor.execute(f"EXPLAIN ({options}) {cursor.mogrify(select, params).decode()}")
        return "\n".join(row[0] for row in cursor.fetchall())
    finally:
        connection.rollback()
        connection.close()


# -- results -------------------------------------------------------------------------------


def _parallel_copy_out(url: sa.URL, statements: list[tuple[str, str, io.BytesIO]], params: dict) -> None:
    """Run each ``COPY (select) TO STDOUT`` on its own psycopg2 connection, concurrently, all in
    one exported REPEATABLE READ snapshot, so they see exactly the same rows."""
    import psycopg2  # PostgreSQL only

    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connections = [psycopg2.connect(dsn) for _ in statements]
    errors: list[BaseException] = []
    try:
        cursors = []
        snapshot = None
        for connection in connections:
            connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
            cursor = connection.cursor()
            if snapshot is None:
                cursor.execute("SELECT pg_export_snapshot()")
                snapshot = cursor.fetchone()[0]
            else:
                cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            for setting in WINDOW_READ_SETTINGS:
                cursor.execute(setting)
            cursors.append(cursor)

        def run(cursor, select, fmt, buffer):
            try:
                cursor.copy_expert(f"COPY ({cursor.mogrify(select, params).decode()}) TO STDOUT (FORMAT {fmt})",
                                   buffer)
            except BaseException as error:  # re-raised in the caller's thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=(c, *s)) for c, s in zip(cursors, statements, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for connection in connections:
            connection.close()
    if errors:
        raise errors[0]


def _strip_marker(column: pd.Series) -> pd.Series:
    """Undo the read's "=" prefix of present values; an empty field was NULL."""
    column = column.reset_index(drop=True)
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column.str.slice(1).where(column != "")
    present = [c for c in column.cat.categories if c != ""]
    column = column.cat.remove_categories([""]) if len(present) < len(column.cat.categories) else column
    return column.cat.rename_categories([c[1:] for c in present])


# A row's class probabilities padded with 0 (or cut) to the class list's width; all 0 where none.
_PADDED_PROBABILITIES = (
    "CASE WHEN class_probabilities IS NULL THEN decode(repeat('0000000000000000', %(classes)s), 'hex') "
    "WHEN length(class_probabilities) >= 8 * %(classes)s "
    "THEN substring(class_probabilities FROM 1 FOR 8 * %(classes)s) "
    "ELSE class_probabilities || decode(repeat('0000000000000000', %(classes)s - length(class_probabilities) / 8), "
    "'hex') END")


def _decode_fixed_rows(data: memoryview, width: int, classes: int = 0) -> np.ndarray:
    """Rows of a binary COPY whose fields all have a fixed width, as a numpy record array."""
    fields = [("key", ">i8"), ("served", ">i8"), ("observed", ">i8"), ("predicted_value", ">f8"),
              ("actual_value", ">f8"), ("label", ">i4"), ("business_value", ">f8")]
    layout = [("count", ">i2")]
    for name, dtype in fields:
        layout += [(f"{name}_length", ">i4"), (name, dtype)]
    if width:
        layout += [("vector_length", ">i4"), ("vector", ">f8", (width,))]
    if classes:
        layout += [("probabilities_length", ">i4"), ("probabilities", ">f8", (classes,))]
    row = np.dtype(layout)
    header = len(codec.HEADER)
    body = len(data) - header - len(codec.TRAILER)
    if body % row.itemsize or bytes(data[:header]) != codec.HEADER:
        raise RuntimeError("window read: unexpected binary COPY layout")
    rows = np.frombuffer(data, dtype=row, count=body // row.itemsize, offset=header)
    if len(rows) and ((rows["count"] != len(fields) + bool(width) + bool(classes)).any()
                      or (width and (rows["vector_length"] != 8 * width).any())
                      or (classes and (rows["probabilities_length"] != 8 * classes).any())):
        raise RuntimeError("window read: a binary COPY row has NULLs or another width")
    return rows
