"""Alerts and retrain requests: what the loop asks people and the retrain DAG to look at.

What becomes an alert, its dedupe key and whether a repeat is suppressed within the cooldown is
decided in :mod:`self_learning.core.alerts` (testable without a database); this module stores
those decisions, moves alerts along their lifecycle and says which are due for notification.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ..core.alerts import alert_key, alert_status, repeat_status
from ..core.records import LEGACY_CAUSE_SEVERITY, AlertRecord, RetrainRequestRecord
from ..core.records import cause_severities as _cause_severities
from ..core.retraining import retrain_cover
from ..core.types import Severity, model_name, to_jsonable
from .rows import _database_now, _equal_to, _utc
from .tables import ALERT_TRANSITIONS, RETRAIN_STATUSES, alert_deliveries, alerts, retrain_requests

__all__ = ["AlertsMixin", "RetrainRequestsMixin", "alert_key"]

EPISODE_LOOKBACK = timedelta(days=90)  # how far back an unbroken daily episode of one alert is followed


class AlertsMixin:
    """Raising, listing, moving and notifying alerts."""

    def raise_alert(self, *, model: str, alert_type: str, severity: Severity | str, cause: str,
                    details: Mapping[str, Any], window_end: datetime,
                    cooldown: timedelta = timedelta(0)) -> dict[str, Any]:
        """Store one finding as an alert, once per (cause, window end): re-running a window
        updates the same row. The alert is ``suppressed`` when the same cause already alerted at
        the same or a higher severity within ``cooldown`` before ``window_end`` or in the episode
        it continues (``core.alerts.repeat_status``: daily alerts without a gap, looked up to
        ``EPISODE_LOOKBACK`` back); an acknowledged or resolved alert keeps its status. Returns
        id, dedupe_key and status."""
        severity = Severity(severity)
        alert_status(severity, ())  # a severity of none is refused before the database is touched
        if cooldown < timedelta(0):
            raise ValueError(f"cooldown: must not be negative, got {cooldown}")
        end = _utc(window_end).to_pydatetime()
        key = alert_key(model, alert_type, cause)
        with self.engine.begin() as conn:
            earlier = conn.execute(sa.select(alerts.c.window_end, alerts.c.severity, alerts.c.status).where(
                alerts.c.dedupe_key == key, alerts.c.window_end >= end - max(cooldown, EPISODE_LOOKBACK),
                alerts.c.window_end < end)).all()
            status = repeat_status(severity, [(_utc(e).to_pydatetime(), level, state) for e, level, state in earlier],
                                   window_end=end, cooldown=cooldown)
            statement = self.dialect.insert(alerts).values(
                dedupe_key=key, model=model_name(model), alert_type=alert_type, severity=severity.value,
                status=status, details=to_jsonable(dict(details)), window_end=end)
            kept = sa.case((alerts.c.status.in_(("open", "suppressed")), statement.excluded.status),
                           else_=alerts.c.status)
            row = conn.execute(statement.on_conflict_do_update(
                index_elements=["dedupe_key", "window_end"],
                set_={"severity": statement.excluded.severity, "details": statement.excluded.details,
                      "status": kept, "updated_at": sa.func.current_timestamp()},
            ).returning(alerts.c.id, alerts.c.status)).one()
        return {"id": row.id, "dedupe_key": key, "status": row.status, "severity": severity.value}

    def create_alert(self, alert_type: str, model: str, details: Mapping[str, Any], *,
                     severity: Severity | str = Severity.MEDIUM, cause: str = "manual",
                     window_end: datetime | None = None) -> int:
        """An alert raised by hand or by other code (no cooldown); returns its id."""
        if window_end is None:
            with self.engine.connect() as conn:
                window_end = _database_now(conn)
        return self.raise_alert(model=model, alert_type=alert_type, severity=severity, cause=cause,
                                details=details, window_end=window_end)["id"]

    def check_alerts(self, *, hours: float = 24, until: datetime | None = None, model: str | None = None,
                     include_suppressed: bool = False) -> list[AlertRecord]:
        """Alerts whose window ended within ``hours`` before ``until`` (default: the database
        clock), most severe first."""
        with self.engine.connect() as conn:
            end = _utc(until) if until is not None else _database_now(conn)
            query = sa.select(alerts).where(alerts.c.window_end > (end - pd.Timedelta(hours=hours)).to_pydatetime(),
                                            alerts.c.window_end <= end.to_pydatetime())
            if model is not None:
                query = query.where(alerts.c.model == model)
            if not include_suppressed:
                query = query.where(alerts.c.status != "suppressed")
            rows = [AlertRecord.from_row(row)
                    for row in conn.execute(query.order_by(alerts.c.window_end, alerts.c.id)).mappings()]
        return sorted(rows, key=lambda r: -Severity(r.severity).rank)

    def open_alerts(self, *, model: str | None = None) -> list[AlertRecord]:
        """Alerts nobody has acknowledged or resolved yet, whatever their window, most severe and
        then newest first."""
        query = sa.select(alerts).where(alerts.c.status == "open").order_by(alerts.c.window_end.desc(),
                                                                             alerts.c.id.desc())
        if model is not None:
            query = query.where(alerts.c.model == model)
        with self.engine.connect() as conn:
            rows = [AlertRecord.from_row(row) for row in conn.execute(query).mappings()]
        return sorted(rows, key=lambda r: -Severity(r.severity).rank)

    def set_alert_status(self, alert_id: int, status: str) -> AlertRecord:
        """Move an alert along its lifecycle (open -> acknowledged -> resolved); returns the row."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).mappings().first()
            if row is None:
                raise KeyError(f"alert_id: no alert {alert_id}")
            if status != row["status"] and status not in ALERT_TRANSITIONS.get(row["status"], ()):
                allowed = ", ".join(ALERT_TRANSITIONS.get(row["status"], ())) or "nothing"
                raise ValueError(f"status: an alert that is {row['status']} can become {allowed}, not {status!r}")
            conn.execute(alerts.update().where(alerts.c.id == alert_id).values(
                status=status, updated_at=sa.func.current_timestamp()))
            return AlertRecord.from_row(conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).mappings().one())

    def alerts_to_notify(self, *, until: datetime, hours: float = 24, cooldown: timedelta = timedelta(days=7)
                         ) -> list[AlertRecord]:
        """Open alerts of the windows ending within ``hours`` before ``until`` that were not notified,
        and whose cause (model, type, cause) was not notified for a window within ``cooldown`` before
        theirs: at most one notification per cause per cooldown. Most severe first."""
        end = _utc(until).to_pydatetime()
        query = sa.select(alerts).where(alerts.c.status == "open", alerts.c.notified_at.is_(None),
                                        alerts.c.window_end > end - timedelta(hours=hours), alerts.c.window_end <= end)
        with self.engine.connect() as conn:
            rows = [AlertRecord.from_row(row)
                    for row in conn.execute(query.order_by(alerts.c.window_end, alerts.c.id)).mappings()]
            keys = sorted({r.dedupe_key for r in rows})
            notified = conn.execute(sa.select(alerts.c.dedupe_key, alerts.c.window_end).where(
                alerts.c.dedupe_key.in_(keys), alerts.c.notified_at.is_not(None),
                alerts.c.window_end > end - timedelta(hours=hours) - cooldown)).all() if keys else []
        sent: dict[str, list[pd.Timestamp]] = {}
        for key, window_end in notified:
            sent.setdefault(key, []).append(_utc(window_end))
        due = []
        for row in rows:  # oldest first, so a repeat inside this batch waits for the first one too
            at = _utc(row.window_end)
            if any(at - cooldown <= t < at for t in sent.get(row.dedupe_key, [])):
                continue
            due.append(row)
            sent.setdefault(row.dedupe_key, []).append(at)
        return sorted(due, key=lambda r: -Severity(r.severity).rank)

    def mark_notified(self, alert_ids: Iterable[int]) -> None:
        """Every channel took these alerts: they are notified (and their per-channel marks go)."""
        ids = list(alert_ids)
        if ids:
            with self.engine.begin() as conn:
                conn.execute(alerts.update().where(alerts.c.id.in_(ids)).values(
                    notified_at=sa.func.current_timestamp()))
                conn.execute(alert_deliveries.delete().where(alert_deliveries.c.alert_id.in_(ids)))

    def mark_delivered(self, alert_ids: Iterable[int], channel: str) -> None:
        """``channel`` took these alerts; a retry of the same notification skips them on it."""
        rows = [{"alert_id": int(i), "channel": channel} for i in alert_ids]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.dialect.insert(alert_deliveries).values(rows).on_conflict_do_nothing())

    def delivered_channels(self, alert_ids: Iterable[int]) -> set[tuple[int, str]]:
        """(alert id, channel) pairs already delivered of alerts not yet marked notified."""
        ids = [int(i) for i in alert_ids]
        if not ids:
            return set()
        query = sa.select(alert_deliveries.c.alert_id, alert_deliveries.c.channel).where(
            alert_deliveries.c.alert_id.in_(ids))
        with self.engine.connect() as conn:
            return {(alert_id, channel) for alert_id, channel in conn.execute(query)}



class RetrainRequestsMixin:
    """Retrain requests: recorded once per id, claimed by the retrain run, closed with its outcome."""

    def request_retrain(self, *, request_id: str, model: str, reasons: list[str], window_end: datetime,
                        causes: Iterable[str] = (), cause_severities: Mapping[str, str] | None = None) -> str:
        """Record a retrain request once per id (re-runs refresh the reasons and causes, keep the
        status); returns its status. The causes are stored as ``{cause: severity}``: the given
        ``cause_severities`` (a ``RetrainDecision``'s), a cause given by name only as ``high``."""
        given = _cause_severities(cause_severities or {}, field="cause_severities")
        stored = _cause_severities(causes) | given
        statement = self.dialect.insert(retrain_requests).values(
            request_id=request_id, model=model_name(model), reasons=list(reasons), causes=stored,
            status="requested", window_end=_utc(window_end).to_pydatetime())
        with self.engine.begin() as conn:
            return conn.execute(statement.on_conflict_do_update(
                index_elements=["request_id"],
                set_={"reasons": statement.excluded.reasons, "causes": statement.excluded.causes,
                      "updated_at": sa.func.current_timestamp()},
            ).returning(retrain_requests.c.status)).scalar_one()

    def claim_retrain_request(self, request_id: str, *, model: str, reasons: list[str], window_end: datetime
                              ) -> RetrainRequestRecord:
        """Mark a request ``running`` for the retrain run that handles it, recording it first when
        the run was started by hand. Returns the row."""
        name = model_name(model)
        statement = self.dialect.insert(retrain_requests).values(
            request_id=request_id, model=name, reasons=list(reasons), causes={"manual": LEGACY_CAUSE_SEVERITY},
            status="running", window_end=_utc(window_end).to_pydatetime())
        with self.engine.begin() as conn:
            stored = conn.execute(sa.select(retrain_requests.c.model).where(
                retrain_requests.c.request_id == request_id)).scalar()
            if stored is not None and stored != name:
                raise ValueError(f"request_id: {request_id!r} is a request for {stored!r}, not {name!r}")
            conn.execute(statement.on_conflict_do_update(
                index_elements=["request_id"],
                set_={"status": "running", "updated_at": sa.func.current_timestamp()}))
            return RetrainRequestRecord.from_row(conn.execute(sa.select(retrain_requests).where(
                retrain_requests.c.request_id == request_id)).mappings().one())

    def finish_retrain_request(self, request_id: str, *, status: str, result_version: str | None = None,
                               detail: Mapping[str, Any] | None = None) -> None:
        """Close a request: ``done`` (with the version it produced), ``failed`` or ``delegated``
        (handed to the model's own training DAG)."""
        if status not in RETRAIN_STATUSES[2:]:
            raise ValueError(f"status: one of {', '.join(RETRAIN_STATUSES[2:])}, got {status!r}")
        with self.engine.begin() as conn:
            updated = conn.execute(retrain_requests.update().where(retrain_requests.c.request_id == request_id).values(
                status=status, result_version=result_version, detail=to_jsonable(dict(detail or {})),
                updated_at=sa.func.current_timestamp())).rowcount
        if not updated:
            raise KeyError(f"request_id: no retrain request {request_id!r}")

    def recent_retrain_requests(self, model: str, *, window_end: datetime, cooldown: timedelta,
                                exclude: str | None = None) -> list[RetrainRequestRecord]:
        """The requests of ``model`` whose window ended within ``cooldown`` before ``window_end``
        (inclusive at both ends), whatever their status, newest first; ``exclude`` leaves one id
        out (a re-run's own request). What ``core.retraining.retrain_cover`` judges."""
        if cooldown < timedelta(0):
            raise ValueError(f"cooldown: must not be negative, got {cooldown}")
        end = _utc(window_end).to_pydatetime()
        query = (sa.select(retrain_requests).where(
            retrain_requests.c.model == model_name(model), retrain_requests.c.window_end >= end - cooldown,
            retrain_requests.c.window_end <= end)
            .order_by(retrain_requests.c.window_end.desc(), retrain_requests.c.request_id.desc()))
        if exclude is not None:
            query = query.where(retrain_requests.c.request_id != exclude)
        with self.engine.connect() as conn:
            return [RetrainRequestRecord.from_row(row) for row in conn.execute(query).mappings()]

    def covering_retrain_request(self, model: str, causes: Mapping[str, str] | Iterable[str], *,
                                 window_end: datetime, cooldown: timedelta, exclude: str | None = None
                                 ) -> RetrainRequestRecord | None:
        """The newest request within ``cooldown`` that already answers ``causes`` (``{cause:
        severity}``, or names: any severity): not failed, and holding every cause at the same or a
        higher severity (``core.retraining.covers``). None means a new request is due."""
        recent = self.recent_retrain_requests(model, window_end=window_end, cooldown=cooldown, exclude=exclude)
        return retrain_cover(recent, causes).covering

    def retrain_request_list(self, *, model: str | None = None, window_end: datetime | None = None,
                             request_id: str | None = None) -> list[RetrainRequestRecord]:
        query = sa.select(retrain_requests).order_by(retrain_requests.c.window_end, retrain_requests.c.model)
        query = query.where(*_equal_to(retrain_requests, model=model, request_id=request_id))
        if window_end is not None:
            query = query.where(retrain_requests.c.window_end == _utc(window_end).to_pydatetime())
        with self.engine.connect() as conn:
            return [RetrainRequestRecord.from_row(row) for row in conn.execute(query).mappings()]

    # -- model registry ------------------------------------------------------------------------
