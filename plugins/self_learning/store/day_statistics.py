"""Day statistics: one standardised statistic per model, check and UTC day.

The sequential monitor (``core/monitoring/``) turns each day's data into one statistic per check
(a feature's drift, concept drift, a performance metric ...) and accumulates them over the last
``lookback_days``: disjoint days, because the overlapping 7-day windows of consecutive runs share
6/7 of their rows and their tests alarm in bursts (docs: statistics notes, "False alarms over
time"). The daily run writes them with its other results (``save_results`` entries with
``"table": "day_statistics"``, one transaction) and reads the history back here.

Natural key (model, check, day): a re-run of a day, or a later run that sees more of that day's
labels, replaces the row. ``window_end`` records the run that wrote it. Retention deletes rows by
``day`` like the other results (``retention.py``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..core.types import as_utc, model_name, shown, to_jsonable
from .rows import _text_problem
from .tables import day_statistics

# The columns an entry sets (``computed_at`` is the database's clock), and their limits.
DAY_STATISTIC_FIELDS = ("model", "check", "day", "family", "z", "raw_z", "effect", "n", "status", "details",
                        "window_end")
TEXT_LIMITS = {"check": 300, "family": 64, "status": 32}
OPTIONAL_NUMBERS = ("z", "raw_z", "effect")


def day_statistic_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The stored row of one entry, each problem a ``ValueError`` naming ``day_statistics.<field>``.
    ``day`` must be a UTC midnight; timestamps may be datetimes or ISO 8601 text (a result's
    ``to_dict()``); a NaN statistic is stored as null."""
    unknown = sorted(set(entry) - set(DAY_STATISTIC_FIELDS))
    if unknown:
        raise ValueError(f"day_statistics.{unknown[0]}: not a column; an entry has {', '.join(DAY_STATISTIC_FIELDS)}")
    missing = [f for f in DAY_STATISTIC_FIELDS if f not in entry and f not in (*OPTIONAL_NUMBERS, "details")]
    if missing:
        raise ValueError(f"day_statistics.{missing[0]}: required")
    row: dict[str, Any] = {"model": model_name(entry["model"])}
    for field, limit in TEXT_LIMITS.items():
        if problem := _text_problem(entry[field], limit):
            raise ValueError(f"day_statistics.{field}: {problem}")
        row[field] = entry[field]
    for field in ("day", "window_end"):
        row[field] = _timestamp(field, entry[field])
    if row["day"] != row["day"].replace(hour=0, minute=0, second=0, microsecond=0):
        raise ValueError(f"day_statistics.day: must be a UTC midnight, got {row['day'].isoformat()}")
    for field in OPTIONAL_NUMBERS:
        row[field] = _optional_number(field, entry.get(field))
    n = entry["n"]
    whole = isinstance(n, numbers.Integral) or (isinstance(n, numbers.Real) and float(n).is_integer())
    if isinstance(n, bool) or not whole or n < 0:
        raise ValueError(f"day_statistics.n: must be a whole number >= 0, got {shown(n)}")
    row["n"] = int(n)
    details = entry.get("details") or {}
    if not isinstance(details, Mapping):
        raise ValueError(f"day_statistics.details: must be a mapping, got {shown(details)}")
    row["details"] = to_jsonable(dict(details))
    return row


def _timestamp(field: str, value) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"day_statistics.{field}: not an ISO 8601 timestamp: {shown(value)}") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"day_statistics.{field}: must be a timezone-aware datetime, got {shown(value)}")
    return as_utc(value)


def _optional_number(field: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"day_statistics.{field}: must be a number or null, got {shown(value)}")
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise ValueError(f"day_statistics.{field}: must be finite or null, got {value}")
    return value


class DayStatisticsMixin:
    """Reading the day statistics (they are written by ``save_results``)."""

    def _day_statistics_upsert(self):
        """The upsert on (model, check, day) that ``save_results`` runs once with all its day
        statistics' rows (``day_statistic_row``): one statement for the 3,000 of a 50-feature model's
        run, not 3,000 statements built one by one (1.2 ms each in SQLAlchemy, a seventh of a run)."""
        statement = self.dialect.insert(day_statistics)
        keys = ("model", "check", "day")
        return statement.on_conflict_do_update(
            index_elements=list(keys), set_={k: statement.excluded[k] for k in DAY_STATISTIC_FIELDS if k not in keys}
            | {"computed_at": sa.func.current_timestamp()})

    def read_day_statistics(self, model: str, since: datetime, until: datetime, *,
                            checks: list[str] | None = None) -> list[dict[str, Any]]:
        """The statistics of ``model`` for days in [since, until), ordered by day then check
        (optionally only ``checks``); timestamps as UTC datetimes on both databases."""
        for field, value in (("since", since), ("until", until)):
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ValueError(f"{field}: must be a timezone-aware datetime, got {shown(value)}")
        d = day_statistics.c
        query = (sa.select(day_statistics).where(d.model == model_name(model), d.day >= as_utc(since),
                                                 d.day < as_utc(until)).order_by(d.day, d.check))
        if checks is not None:
            query = query.where(d.check.in_(list(checks)))
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            for column in ("day", "window_end", "computed_at"):
                if row[column] is not None:
                    row[column] = as_utc(row[column])
        return rows
