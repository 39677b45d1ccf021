"""When an estimated performance (``core.estimation``) becomes an ``estimated_performance`` alert:
a one-sided CUSUM over daily statistics, with its threshold from the model's false-alarm budget, as
the sequential monitor (``core.monitoring``) does for the realized metrics.

Why daily statistics, not the 7-day window's estimate: consecutive daily windows share 6/7 of their
rows, so their estimates are strongly correlated and a CUSUM (whose ARL0 assumes independent
increments) over them would alarm far more often than its threshold promises. Each day's own rows
(the last day of the window) are disjoint from the other days', so their estimates are close to
independent. A day's statistic is

    z = (estimate - reference value) / sampling error, signed so that worse is positive
        (ROC AUC, accuracy: reference - estimate; MAE: estimate - reference),

with the sampling error the estimator's band sd at the day's size (the deviation of the realized
metric over reference chunks of a day: the day-to-day variation of the baseline is in it). It is
conservative: the estimate is an expectation, so on a stable stream it varies less than the realized
metric whose sd is the denominator (z's variance is below 1, fewer false alarms than the budget,
at some cost in power).

Budget: ``ESTIMATED_BUDGET_SHARE`` (0.1) of one false alarm per ``false_alarm_days``, so ARL0 =
false_alarm_days / share and h = ``cusum.threshold(k, ARL0)`` with the performance family's k
(``MonitorSettings.k_performance``, 1.0). The monitor's ``BUDGET_SHARES`` already add up to 1; this
share is on top of them (a model's expected false alarms become 1.1 per ``false_alarm_days``) until
the shares are rebalanced there.

One metric per task kind is watched (``ALERT_METRIC``), not all five: five CUSUMs would spend the
budget five times on one question ("is the model getting worse?"). An estimator flagged unreliable
(``estimator_reliability``: its realized values fell outside the band on the last matured windows)
raises no alert: its estimates are what is in doubt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .monitoring.cusum import run_cusum, threshold
from .types import TaskKind, parse_task_kind

ESTIMATED_BUDGET_SHARE = 0.1
ALERT_METRIC: Mapping[TaskKind, str] = {TaskKind.BINARY_CLASSIFICATION: "roc_auc",
                                        TaskKind.MULTICLASS_CLASSIFICATION: "accuracy",
                                        TaskKind.REGRESSION: "mae"}
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape"})


def alert_metric(task_kind: TaskKind | str) -> str:
    """The estimated metric whose daily statistic the CUSUM watches."""
    return ALERT_METRIC[parse_task_kind(task_kind)]


def day_z(metric: str, value: float | None, reference_value: float | None, sampling_error: float | None
          ) -> float | None:
    """A day's standardised statistic, worse positive (see the module docstring); None when any part
    is missing or the sampling error is not positive."""
    if value is None or reference_value is None or sampling_error is None:
        return None
    if not (math.isfinite(value) and math.isfinite(reference_value) and sampling_error > 0):
        return None
    worse = value - reference_value if metric in LOWER_IS_BETTER else reference_value - value
    return worse / sampling_error


def estimated_cusum(days: Sequence[datetime], zs: Sequence[float | None], *, k: float, false_alarm_days: float,
                    share: float = ESTIMATED_BUDGET_SHARE) -> dict[str, Any]:
    """The CUSUM over the days' statistics (in day order) and its verdict: ``alarm`` when the last
    value exceeds h. A JSON-ready dict (stored in the estimated result)."""
    if len(days) != len(zs):
        raise ValueError(f"zs: {len(zs)} statistics for {len(days)} days")
    if not false_alarm_days > 0:
        raise ValueError(f"false_alarm_days: must be > 0, got {false_alarm_days!r}")
    if not 0 < share <= 1:
        raise ValueError(f"share: must be in (0, 1], got {share!r}")
    arl0 = false_alarm_days / share
    h = threshold(k, arl0)
    path = run_cusum(days, zs, k)
    return {"k": k, "h": h, "arl0_days": arl0, "budget_share": share, "cusum": path.last,
            "alarm": path.last > h, "days": len([z for z in zs if z is not None]),
            "change_start": path.change_start.isoformat() if path.change_start else None}


def estimated_severity(metric: str, value: float, upper: float | None, lower: float | None,
                       reference_value: float) -> str:
    """``high`` when the whole band of the window's estimate is on the worse side of the reference's
    realized value, else ``medium`` (the CUSUM's evidence alone)."""
    if metric in LOWER_IS_BETTER:
        beyond = lower is not None and lower > reference_value
    else:
        beyond = upper is not None and upper < reference_value
    return "high" if beyond else "medium"
