"""Typed records of the store's registry, A/B-test, alert and retrain-request rows.

Why records and not the rows as dicts: every layer read these rows by string key
(``store.get_champion(m)["version"]``, ``running_ab_test(m)["test_id"]``, in the operators, the
loop, the demo and the README's serving snippet), so a misspelt or renamed column
surfaced as a ``KeyError`` in a running DAG instead of in an editor, and the same row differed by
database: PostgreSQL hands timestamps back tz-aware, SQLite naive, so ``row["ended_at"] > start``
raised ``TypeError`` on one and not the other (``loop/reporting.py`` wraps every read in
``as_utc`` for that reason). A record's fields are exactly the table's columns (an integration
test compares them), datetimes are aware UTC on both databases, JSON columns are their decoded
values, and a retrain request's ``causes`` is one shape (cause -> severity) whatever shape the
row was written in.

Transition: a record is also a read-only ``Mapping`` of its fields, so the code written against
the dicts keeps working unchanged: ``record["version"]``, ``record.get("detail", {})``,
``dict(record)`` (the field values as they are) and ``record == {...}`` (compares as that dict).
``to_dict()`` is the JSON form every result of the package has (datetimes as ISO text). New code
reads attributes (``champion.version``); the key access goes once no caller is left.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from .types import ALERT_SEVERITY_NAMES, SEVERITY_NAMES, Result, as_utc, shown

__all__ = ["LEGACY_CAUSE_SEVERITY", "ABTestRecord", "AlertRecord", "ModelVersion", "Record", "RetrainRequestRecord",
           "cause_severities"]

# A retrain request stored before causes carried severities (a JSON list of names) counts each
# cause as "high": the decision's default bar for feature drift, above concept drift's default
# "medium", and what a performance limit counts as. Such a request covers a new high cause of the
# same name, but not a critical one.
LEGACY_CAUSE_SEVERITY = "high"


@dataclasses.dataclass(frozen=True, eq=False)
class Record(Result, Mapping):
    """Base of the stored records: frozen, fields = columns, readable as a ``Mapping`` (the
    transition from dict rows; see the module docstring). Equality is the ``Mapping``'s: a record
    equals a record or dict with the same keys and values."""

    _TIMESTAMPS: ClassVar[tuple[str, ...]] = ()
    _OBJECTS: ClassVar[tuple[str, ...]] = ()  # JSON columns holding an object (or NULL)

    def __post_init__(self):
        for name in self._TIMESTAMPS:
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, datetime):
                    raise ValueError(f"{name}: expected a datetime or None, got {shown(value)}")
                object.__setattr__(self, name, as_utc(value))
        for name in self._OBJECTS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"{name}: expected a JSON object or None, got {shown(value)}")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]):
        """The record of one stored row (a SQLAlchemy ``RowMapping`` or any mapping of column
        values). Columns the record does not know are ignored; a missing one is an error naming it."""
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in row]
        if missing:
            raise ValueError(f"{missing[0]}: the {cls.__name__} row has no such column (columns: {sorted(row)})")
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def _field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))

    def __getitem__(self, key: str) -> Any:
        if key not in self._field_names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._field_names())

    def __len__(self) -> int:
        return len(self._field_names())


@dataclasses.dataclass(frozen=True, eq=False)
class ModelVersion(Record):
    """A row of ``model_versions``: a trained (or served) version of a model."""

    _TIMESTAMPS: ClassVar[tuple[str, ...]] = ("training_window_start", "training_window_end", "created_at")
    _OBJECTS: ClassVar[tuple[str, ...]] = ("metrics",)

    model: str
    version: str
    status: str
    artifact_uri: str | None = None
    training_window_start: datetime | None = None
    training_window_end: datetime | None = None
    metrics: dict[str, Any] | None = None
    created_by: str | None = None
    created_at: datetime | None = None

    @property
    def training_window(self) -> tuple[datetime, datetime] | None:
        if self.training_window_start is None or self.training_window_end is None:
            return None
        return self.training_window_start, self.training_window_end


@dataclasses.dataclass(frozen=True, eq=False)
class ABTestRecord(Record):
    """A row of ``ab_tests``: a champion-vs-challenger test, its configuration and latest result."""

    _TIMESTAMPS: ClassVar[tuple[str, ...]] = ("started_at", "ended_at")
    _OBJECTS: ClassVar[tuple[str, ...]] = ("config", "result")

    test_id: str
    model: str
    champion_version: str
    challenger_version: str
    config: dict[str, Any]
    status: str
    result: dict[str, Any] | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclasses.dataclass(frozen=True, eq=False)
class AlertRecord(Record):
    """A row of ``alerts``; ``severity`` is the stored name (``low`` .. ``critical``)."""

    _TIMESTAMPS: ClassVar[tuple[str, ...]] = ("window_end", "created_at", "updated_at", "notified_at")
    _OBJECTS: ClassVar[tuple[str, ...]] = ("details",)

    id: int
    dedupe_key: str
    model: str
    alert_type: str
    severity: str
    status: str
    details: dict[str, Any] | None = None
    window_end: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    notified_at: datetime | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.severity not in SEVERITY_NAMES:
            raise ValueError(f"severity: one of {', '.join(SEVERITY_NAMES)}, got {shown(self.severity)}")

    @property
    def summary(self) -> str:
        """The finding's one-line summary (``details["summary"]``), or empty."""
        return str((self.details or {}).get("summary", ""))


@dataclasses.dataclass(frozen=True, eq=False)
class RetrainRequestRecord(Record):
    """A row of ``retrain_requests``. ``causes`` maps each cause to the severity it had when the
    request was filed, whether the row stored that map or (before severities) a list of names."""

    _TIMESTAMPS: ClassVar[tuple[str, ...]] = ("window_end", "requested_at", "updated_at")
    _OBJECTS: ClassVar[tuple[str, ...]] = ("detail",)

    request_id: str
    model: str
    reasons: list[str]
    status: str
    window_end: datetime | None = None
    result_version: str | None = None
    requested_at: datetime | None = None
    updated_at: datetime | None = None
    causes: dict[str, str] = dataclasses.field(default_factory=dict)
    detail: dict[str, Any] | None = None

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "reasons", list(self.reasons or []))
        object.__setattr__(self, "causes", cause_severities(self.causes, default=LEGACY_CAUSE_SEVERITY))


def cause_severities(causes: Mapping[str, str] | list[str] | tuple[str, ...] | None, *,
                     default: str = LEGACY_CAUSE_SEVERITY, field: str = "causes") -> dict[str, str]:
    """``{cause: severity}`` from either stored shape: a mapping is checked (every severity one of
    the names above ``none``), a list of names gets ``default`` for each, None is no cause."""
    if causes is None:
        return {}
    if isinstance(causes, str):  # one name is not a list of its letters
        raise ValueError(f"{field}: expected a list of causes or a cause -> severity object, got {shown(causes)}")
    pairs = causes.items() if isinstance(causes, Mapping) else ((cause, default) for cause in causes)
    out: dict[str, str] = {}
    for cause, severity in pairs:
        if not isinstance(cause, str) or not cause:
            raise ValueError(f"{field}: cause names are non-empty strings, got {shown(cause)}")
        if severity not in ALERT_SEVERITY_NAMES:
            raise ValueError(f"{field}[{cause}]: severity one of {', '.join(ALERT_SEVERITY_NAMES)}, "
                             f"got {shown(severity)}")
        out[cause] = str(severity)
    return dict(sorted(out.items()))
