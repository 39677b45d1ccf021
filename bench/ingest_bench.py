"""Feedback-store ingest and window-read benchmark on a throwaway PostgreSQL.

1M predictions with 20 features (16 numeric, 4 categorical) from a DataFrame:
- end-to-end bulk ingest rows/s through ``FeedbackStore.register_predictions`` (validation and
  serialisation included);
- the database phase alone (the store's binary COPY of already encoded rows) vs ``psql \\copy``
  of the same rows from a file (dumped by psql from the loaded table);
- a re-send of already stored rows (every id taken: the conflict path, which compares each
  row with the stored one after a staging-table ``INSERT ... ON CONFLICT DO NOTHING``);
- bulk outcomes: new ones, then all of them again with other values (corrections);
- single ``register_prediction`` latency p50/p99 on loopback;
- a 1M-row window read with 20 typed feature columns (``read_window``).
Run: ``make bench`` (or ``.venv/bin/python bench/ingest_bench.py --rows 200000``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]
from self_learning import pgcopy, store  # noqa: E402
from self_learning.store import ingest  # noqa: E402
from support.pg_server import ThrowawayPostgres  # noqa: E402

WINDOW = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
RESEND_ROWS = 100_000


def make_frame(rows: int, seed: int = 1, *, day: datetime = WINDOW[0], id_prefix: str = "bench",
               versions: tuple[str, ...] = ("v1", "v2")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "prediction_id": [f"{id_prefix}-{i:010d}" for i in range(rows)],
        "model": "roas_predictor",
        "model_version": rng.choice(list(versions), rows) if len(versions) > 1 else versions[0],
        "predicted_value": rng.gamma(2.0, 1.5, rows),
        "served_at": pd.Timestamp(day) + pd.to_timedelta(rng.integers(0, 86_400_000_000, rows), unit="us"),
    })
    for i in range(16):
        frame[f"num_{i:02d}"] = rng.standard_normal(rows)
    for i, labels in enumerate((["meta", "tiktok", "google"], ["video", "image", "carousel"],
                                ["question", "shock", "story", "offer"], ["mon", "tue", "wed", "thu", "fri"])):
        frame[f"cat_{i}"] = rng.choice(labels, rows)
    return frame


def timed_database_phase(feedback: store.FeedbackStore, frame: pd.DataFrame) -> float:
    """Ingest again with the store's own code, encoding every COPY stream up front and timing
    only the writes."""
    copy_seconds = 0.0
    original_copy, original_encode = ingest._copy, pgcopy.encode_rows

    def copy_only(conn, statement, chunks, **options):
        nonlocal copy_seconds
        start = time.perf_counter()
        original_copy(conn, statement, chunks, **options)
        copy_seconds += time.perf_counter() - start

    ingest._copy = copy_only
    pgcopy.encode_rows = lambda *args, **kwargs: list(original_encode(*args, **kwargs))
    try:
        assert feedback.register_predictions(frame).inserted == len(frame)
    finally:
        ingest._copy, pgcopy.encode_rows = original_copy, original_encode
    return copy_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--latency-samples", type=int, default=2000)
    args = parser.parse_args()
    frame = make_frame(args.rows)
    with ThrowawayPostgres() as server, tempfile.TemporaryDirectory() as tmp:
        url = server.create_database("bench")
        feedback = store.FeedbackStore.from_url(url)
        feedback.ensure_schema()

        start = time.perf_counter()
        report = feedback.register_predictions(frame)
        ingest = time.perf_counter() - start
        assert report.inserted == args.rows, report

        dump = Path(tmp) / "predictions.bin"
        subprocess.run(["psql", url, "-qc", f"\\copy predictions to '{dump}' (format binary)"], check=True)
        with feedback.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE predictions")
        start = time.perf_counter()
        subprocess.run(["psql", url, "-qc", f"\\copy predictions from '{dump}' (format binary)"], check=True)
        psql_copy = time.perf_counter() - start
        with feedback.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE predictions")
        database_phase = timed_database_phase(feedback, frame)

        resent = frame.iloc[:RESEND_ROWS]
        start = time.perf_counter()
        report = feedback.register_predictions(resent)
        resend = time.perf_counter() - start
        assert (report.inserted, report.unchanged) == (0, len(resent)), report

        labels = pd.DataFrame({"prediction_id": frame["prediction_id"], "actual_value": frame["predicted_value"],
                               "observed_at": pd.Timestamp(WINDOW[1])})
        start = time.perf_counter()
        assert feedback.record_outcomes(labels).inserted == len(labels)
        outcomes_new = time.perf_counter() - start
        start = time.perf_counter()
        assert feedback.record_outcomes(labels.assign(actual_value=labels["actual_value"] + 1)).corrected == len(labels)
        outcomes_corrected = time.perf_counter() - start

        latencies = []
        for i in range(args.latency_samples):
            start = time.perf_counter()
            feedback.register_prediction("roas_predictor", 1.5, {"num_00": 0.1, "cat_0": "meta"},
                                         prediction_id=f"single-{i}", served_at=WINDOW[0])
            latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        window = feedback.read_window("roas_predictor", *WINDOW, labelled_only=False)
        read = time.perf_counter() - start

    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(f"feedback store: {args.rows:,} predictions x 20 features (16 numeric, 4 categorical)")
    print(f"  bulk ingest end-to-end   {ingest:7.2f} s   {args.rows / ingest:,.0f} rows/s")
    print(f"  database phase (COPY)    {database_phase:7.2f} s   psql \\copy of the same rows {psql_copy:.2f} s "
          f"(ratio {database_phase / psql_copy:.2f})")
    print(f"  re-send (conflict path)  {resend:7.2f} s   {len(resent) / resend:,.0f} rows/s ({len(resent):,} rows)")
    print(f"  outcomes, new            {outcomes_new:7.2f} s   {args.rows / outcomes_new:,.0f} rows/s")
    print(f"  outcomes, corrected      {outcomes_corrected:7.2f} s   {args.rows / outcomes_corrected:,.0f} rows/s")
    print(f"  register_prediction      p50 {p50:.2f} ms   p99 {p99:.2f} ms   ({args.latency_samples} calls)")
    print(f"  window read              {read:7.2f} s   {len(window):,} rows x {window.shape[1]} columns")


if __name__ == "__main__":
    main()
