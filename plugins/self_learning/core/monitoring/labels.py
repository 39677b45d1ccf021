"""The checks that need outcomes: concept drift (the per-row loss) and performance (each metric of
``core.degradation.compare_metrics``), judged only on days whose labels have matured.

Label maturity: a day counts once its label coverage (labelled / served rows of that day) reaches
``min_label_coverage`` times the baseline's own coverage (some predictions never get an outcome; a
baseline that ends at 90 % coverage would otherwise never let a day mature at 0.8 absolute). Before
that its performance checks are recorded with z None and status ``labels_pending``, and the next
run, which reads the day again (``label_window_days``), recomputes them with the labels that arrived.

Concept drift does not wait for maturity: a day whose labels are still arriving is compared with the
baseline rows that would have been labelled by now too (delay-matched). The labels that arrive first
are not a random sample (a click is known in an hour, a purchase in days), so comparing them with
the whole baseline would read the early labels' own loss as drift; but the baseline rows with
observed_at - served_at within the horizon this day's row at the same time of day has had (window end
- that moment) went through the same censoring, and under no change their loss has the same
distribution. So the day's z compares its labelled rows' losses with those rows' (both only rows
observed by the window end), status ``ok`` with ``provisional`` and ``matched_baseline_rows`` in its
details, recomputed by every run until the day matures. The practical gate rates the segment's mean
loss against the same matched baseline, day by day.

The day's z is that of its losses' van der Waerden normal scores in the reference's losses (a rank
statistic, as the features' mean checks use; the gate's effect stays the % change of the mean loss).
Why not the Welch z of the mean loss: losses are heavy-tailed (an absolute error scales with the
outcome, a log loss with the confidence of a wrong prediction), so the mean of a day's losses is a
noisy statistic and its day-to-day spread looked like day effects. On the bench's quick concept-only
stream (regression, 1,000 rows/day, MAE +11 %, label delays of 1-7 days) a calibrated baseline day
had a Welch z spread (MAD) of 1.65 and a changed day z ~ 5 before the empirical null, ~ 2 after;
by normal scores the spread is 1.04 (theory holds) and a changed day is z ~ 5.4. The alarm came on
run 7 with Welch and comes on run 2 now, as the issue asks; the provisional days carry it. (On two
other seeds the outcome's own day effects keep the spread at 1.6-1.8 by either statistic, and a
changed day gains ~0.7 of z.)
Performance metrics stay on matured days only: an AUC or MAPE of the first labels is not the day's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .. import tasks
from ..multiclass import frame_class_predictions
from ..types import Severity, TaskKind
from . import daily, gates
from .daily import NS_PER_DAY, DayValue, Track, utc_datetimes, welch_z


class LabelledRows:
    """The rows of a frame for the label checks and each day's served and labelled rows.

    ``actual`` and ``predicted`` in the shapes the task kind's losses and metrics take
    (``core.tasks``): float arrays, or for a multiclass model (``classes`` its class list) the
    actual class labels (None where unlabelled) and a ``ClassPredictions`` of every row. A row is
    labelled when the task kind's target column (``TaskSpec.target``) is set."""

    def __init__(self, frame, groups: list[np.ndarray | None], task_kind: str, classes=None):
        spec = tasks.task_spec(task_kind)
        if spec.kind == TaskKind.MULTICLASS_CLASSIFICATION.value:
            actual = frame[spec.target].to_numpy(dtype=object)
            labelled = ~pd.isna(actual)
            self.predicted_all = frame_class_predictions(frame, classes)
        else:
            actual = frame[spec.target].to_numpy(dtype=np.float64, na_value=np.nan)
            labelled = np.isfinite(actual)
            self.predicted_all = frame["predicted_value"].to_numpy(dtype=np.float64, na_value=np.nan)
        self.labelled = labelled
        self.actual, self.predicted = actual, self.predicted_all
        self.groups = [None if g is None else g[labelled[g]] for g in groups]
        self.served = [0 if g is None else int(g.size) for g in groups]
        self.coverage_total = float(labelled.mean()) if labelled.size else 0.0
        # served_at and observed_at - served_at in ns (NaN: no label, or no observed_at to match on)
        self.served_ns = _ns(frame["served_at"])
        self.delay_ns = _ns(frame["observed_at"]) - self.served_ns if "observed_at" in frame else \
            np.full(actual.size, np.nan)
        self.delay_ns[~labelled] = np.nan

    def day(self, i: int) -> tuple[np.ndarray, Any]:
        g = self.groups[i]
        return self.actual[g], self.predicted[g]

    def rows(self, positions) -> tuple[np.ndarray, Any]:
        index = np.concatenate([self.groups[i] for i in positions if self.groups[i] is not None] or
                               [np.empty(0, np.int64)])
        return self.actual[index], self.predicted[index]


def _ns(timestamps) -> np.ndarray:
    """UTC nanoseconds since the epoch as floats (NaN for a missing time); naive times are UTC."""
    moments = utc_datetimes(timestamps)
    ns = moments.view(np.int64).astype(np.float64)
    ns[np.isnat(moments)] = np.nan
    return ns


def is_hard_label(task_kind: str, *predicted) -> bool:
    """A classifier that stores labels, not probabilities, in these windows together: a binary one's
    0/1 predictions (``core.tasks.is_hard_label``), a multiclass one's one-hot probabilities
    (``ClassPredictions.is_one_hot``); decided once, so both windows are scored with the same loss."""
    kind = tasks.task_spec(task_kind).kind
    if kind == TaskKind.MULTICLASS_CLASSIFICATION.value:
        windows = [p for p in predicted if len(p)]
        return bool(windows) and all(p.is_one_hot for p in windows)
    return kind == TaskKind.BINARY_CLASSIFICATION.value and tasks.is_hard_label(np.concatenate(predicted))


def losses(task_kind: str, actual: np.ndarray, predicted: np.ndarray, hard: bool) -> np.ndarray:
    """Per-row loss: 0/1 for a hard-label classifier, else the task kind's (``core.tasks.row_losses``)."""
    return tasks.row_losses(task_kind, actual, predicted, hard_labels=hard)


def maturity(base: LabelledRows, cur: LabelledRows, min_coverage: float, min_rows: int) -> list[str | None]:
    """Per current day: None (outside the window), "ok", "labels_pending" or "insufficient_data"."""
    needed = min_coverage * base.coverage_total
    states = []
    for i, served in enumerate(cur.served):
        group = cur.groups[i]
        if group is None:
            states.append(None)
        elif sum(g.size for g in base.groups if g is not None) < min_rows:  # nothing to compare with
            states.append("insufficient_data")
        elif served and group.size / served >= needed and base.coverage_total > 0:
            states.append("ok" if group.size >= min_rows else "insufficient_data")
        else:
            states.append("labels_pending" if served >= min_rows else "insufficient_data")
    return states


def concept_track(task_kind: str, base: LabelledRows, base_groups: list[np.ndarray], cur: LabelledRows,
                  states: list[str | None], hard: bool, min_rows: int, *, window_end: datetime | None = None,
                  day_numbers: list[int] | None = None) -> Track:
    """``concept:loss_up``: z of the day's losses above the baseline's (worse only), by their normal
    scores in the baseline's losses (module docstring); a day
    whose labels are still arriving against the delay-matched baseline rows (module docstring) when
    ``window_end`` and the days' numbers are given."""
    base_loss = np.full(base.actual.size, np.nan)
    labelled = base.labelled
    base_loss[labelled] = losses(task_kind, base.actual[labelled], base.predicted[labelled], hard)
    # the baseline's losses as a pool of normal scores (its days' scores when they are calibrated)
    pool_scores = daily.NumericPool.build(base_loss, base_groups or [np.arange(base_loss.size)],
                                          with_days=bool(base_groups))
    pool = base_loss[labelled]
    n_b = pool.size
    mean_b = float(pool.mean()) if n_b else float("nan")
    var_b = float(pool.var(ddof=1)) if n_b > 1 else 0.0
    day_losses = [None if s is None else losses(task_kind, *cur.day(i), hard) for i, s in enumerate(states)]
    # per usable day: (its losses, the baseline mean and variance and rows it is compared with)
    compared: dict[int, tuple[np.ndarray, float, float, int]] = {}
    days = []
    for i, state in enumerate(states):
        if state is None:
            days.append(None)
            continue
        loss = day_losses[i]
        coverage = cur.groups[i].size / cur.served[i] if cur.served[i] else 0.0
        details = {"coverage": coverage, "labelled": int(loss.size)}
        reference = pool_scores
        if state == "ok" and n_b >= min_rows:
            compared[i] = (loss, mean_b, var_b, n_b)
        elif state == "labels_pending" and window_end is not None and day_numbers is not None:
            matched = _delay_matched(base, base_loss, cur, i, loss, window_end, day_numbers[i], min_rows)
            if matched is not None:
                loss, matched_losses = matched
                reference = daily.NumericPool.build(matched_losses, [np.arange(matched_losses.size)],
                                                    with_days=False)
                compared[i] = (loss, reference.mean, reference.var, int(reference.values.size))
                details.update(provisional=True, labelled=int(loss.size),
                               matched_baseline_rows=int(matched_losses.size))
        if i not in compared:
            days.append(DayValue(None, None, int(loss.size), state if state != "ok" else "insufficient_data", details))
            continue
        loss, mean_r, _, n_r = compared[i]
        mean = float(loss.mean())
        z = daily.scores_z(reference.scores(*reference.place(loss)), reference.score_sum, reference.score_sq, n_r)
        days.append(DayValue(z, _pct(mean, mean_r), int(loss.size), details={**details, "mean_loss": mean}))
    baseline = daily.baseline_scores_z(pool_scores, min_rows)

    def gate(positions):
        parts = [compared[i] for i in positions if i in compared]
        if not parts:
            return None, Severity.NONE, {}
        seg = np.concatenate([part[0] for part in parts])
        rows = np.array([part[0].size for part in parts], dtype=np.float64)
        # what the baseline's loss would be on these rows: each day's comparison weighted by its rows
        mean_r = float(rows @ np.array([part[1] for part in parts]) / rows.sum())
        var_r = float(rows @ np.array([part[2] for part in parts]) / rows.sum())
        n_r = min(part[3] for part in parts)
        mean = float(seg.mean())
        z = welch_z(mean, float(seg.var(ddof=1)) if seg.size > 1 else 0.0, seg.size, mean_r, var_r, n_r)
        pct = _pct(mean, mean_r)
        return pct, gates.rate(gates.LOSS_LADDER, pct), {
            "reference_value": mean_r, "current_value": mean, "pct_change": pct, "p_value": float(special.ndtr(-z)),
            "n_reference": int(n_r), "n_current": int(seg.size),
            "provisional_days": sum(1 for i in positions if i in compared and states[i] != "ok")}

    return Track("concept:loss_up", "concept_drift", "pct_change", days, baseline, gate)


def _delay_matched(base: LabelledRows, base_loss: np.ndarray, cur: LabelledRows, i: int, loss: np.ndarray,
                   window_end: datetime, day_number: int, min_rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The day's losses of rows observed by ``window_end`` and the baseline losses of the rows that
    would have been too, each at the time of day it was served on this day; None when either side
    has fewer than ``min_rows`` (or no observed_at to match on)."""
    end_ns = float(pd.Timestamp(window_end).value)
    rows = cur.groups[i]
    day_delay = cur.delay_ns[rows]
    seen = np.isfinite(day_delay) & (cur.served_ns[rows] + day_delay <= end_ns)
    if int(seen.sum()) < min_rows:
        return None
    day_start_ns = float(day_number) * NS_PER_DAY
    horizon = end_ns - (day_start_ns + np.mod(base.served_ns, NS_PER_DAY))  # NaN served_at: never matched
    matched = np.isfinite(base.delay_ns) & (base.delay_ns <= horizon) & np.isfinite(base_loss)
    if int(matched.sum()) < min_rows:
        return None
    return loss[seen], base_loss[matched]


def _pct(current: float, reference: float) -> float | None:
    if reference > 0:
        return (current - reference) / reference * 100.0
    return 0.0 if current == reference else None


def metric_names(task_kind: str) -> tuple[str, ...]:
    from ..degradation import DEFAULT_METRICS

    return tuple(DEFAULT_METRICS[task_kind])


def performance_tracks(task_kind: str, base: LabelledRows, base_groups: list[np.ndarray], cur: LabelledRows,
                       states: list[str | None], hard: bool, min_rows: int) -> list[Track]:
    """``performance:<metric>``: the day's z of each metric from ``compare_metrics`` (one-sided,
    > 0 = worse) against the baseline's labelled rows."""
    from ..degradation import ReferenceMetrics, compare_metrics

    names = metric_names(task_kind)
    labelled = base.labelled
    reference = ReferenceMetrics.build(task_kind, base.actual[labelled], base.predicted[labelled])

    def compare(ref, current):
        return {c.metric: c for c in compare_metrics(task_kind, None, None, current[0], current[1], reference=ref,
                                                     min_samples=min_rows, hard_labels=hard)}

    per_day = [None if s != "ok" or reference.n < min_rows else compare(reference, cur.day(i))
               for i, s in enumerate(states)]
    # each baseline day against the rest (the reference without its rows), aligned with the days
    baseline: dict[str, list[float | None]] = {m: [None] * len(base_groups) for m in names}
    position = np.cumsum(labelled) - 1  # row -> index among the labelled rows
    for day, group in enumerate(base_groups):
        rows = group[labelled[group]]
        if rows.size < min_rows or reference.n - rows.size < min_rows:
            continue
        for metric, result in compare(reference.excluding(position[rows]),
                                      (base.actual[rows], base.predicted[rows])).items():
            if result.z is not None and metric in baseline:
                baseline[metric][day] = float(result.z)
    tracks = []
    for metric in names:
        days = []
        for i, state in enumerate(states):
            if state is None:
                days.append(None)
                continue
            n = int(cur.groups[i].size)
            details = {"coverage": n / cur.served[i] if cur.served[i] else 0.0}
            result = per_day[i][metric] if per_day[i] is not None else None
            if result is None or result.z is None:
                status = state if state != "ok" else "insufficient_data"
                if result is not None:
                    details["reason"] = result.reason
                days.append(DayValue(None, None, n, status, details))
            else:
                days.append(DayValue(float(result.z), result.relative_worse_by, n, details={
                    **details, "reference_value": result.reference_value, "current_value": result.current_value}))
        tracks.append(Track(f"performance:{metric}", "performance", "relative_worse_by", days, baseline[metric],
                            _performance_gate(metric, compare, reference, cur, states)))
    return tracks


def _performance_gate(metric, compare, reference, cur: LabelledRows, states):
    def gate(positions):
        ok = [i for i in positions if states[i] == "ok"]
        if not ok:
            return None, Severity.NONE, {}
        result = compare(reference, cur.rows(ok))[metric]
        severity = Severity.NONE
        if result.status == "ok" and result.practical:
            severity = gates.PERFORMANCE_LADDER.rate(max(result.relative_worse_by or 0.0, 0.0))
        return result.relative_worse_by, severity, result.to_dict()
    return gate


def label_delay(frame, task_kind: str) -> dict:
    """Median and 90th percentile of observed_at - served_at over the labelled rows, in days."""
    labelled = frame[tasks.task_spec(task_kind).target].notna().to_numpy()
    if not labelled.any() or "observed_at" not in frame:
        return {"median_days": None, "p90_days": None, "labelled_rows": int(labelled.sum())}
    delay = (frame["observed_at"][labelled] - frame["served_at"][labelled]).dt.total_seconds().to_numpy() / 86_400
    delay = delay[np.isfinite(delay)]
    if not delay.size:
        return {"median_days": None, "p90_days": None, "labelled_rows": int(labelled.sum())}
    return {"median_days": float(np.median(delay)), "p90_days": float(np.quantile(delay, 0.9)),
            "labelled_rows": int(labelled.sum())}
