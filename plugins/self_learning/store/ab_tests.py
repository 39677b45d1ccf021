"""A/B tests: one running champion-vs-challenger test per model, its looks and its end."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..core.records import ABTestRecord
from ..core.types import model_name, to_jsonable
from .registry import version_exists
from .rows import _text_problem, _utc
from .tables import AB_TEST_STATUSES, ab_tests, predictions


class ABTestsMixin:
    """Starting, reading and closing A/B tests; the arms' counts of a window (with the windows area)."""

    def start_ab_test(self, *, test_id: str, model: str, champion_version: str, challenger_version: str,
                      config: Mapping[str, Any], started_at: datetime) -> ABTestRecord:
        """Record a running champion-vs-challenger test. Both versions must be registered and
        differ; a model runs one test at a time (starting the same test again returns it)."""
        name = model_name(model)
        if (problem := _text_problem(test_id, 128)) is not None:
            raise ValueError(f"test_id: {problem}")
        if champion_version == challenger_version:
            raise ValueError(f"challenger_version: the arms need two different versions, got {champion_version!r} "
                             "twice")
        with self.engine.begin() as conn:
            if name not in self._models_known(conn):
                raise ValueError(f"model: {name!r} is not registered")
            self.dialect.lock(conn, f"self_learning.ab_test.{name}")  # one test starts per model at a time
            for field, version in (("champion_version", champion_version), ("challenger_version", challenger_version)):
                try:
                    version_exists(conn, name, version)
                except KeyError:
                    raise ValueError(f"{field}: {name!r} has no registered version {version!r}") from None
            running = conn.execute(sa.select(ab_tests).where(ab_tests.c.model == name,
                                                             ab_tests.c.status == "running")).mappings().first()
            if running is not None:
                if running["test_id"] == test_id:
                    return ABTestRecord.from_row(running)
                raise ValueError(f"model: {name!r} already runs A/B test {running['test_id']!r} "
                                 f"({running['champion_version']} vs {running['challenger_version']})")
            existing = conn.execute(sa.select(ab_tests).where(ab_tests.c.test_id == test_id)).mappings().first()
            if existing is not None:  # the same test, already concluded: a re-run does not restart it
                return ABTestRecord.from_row(existing)
            conn.execute(ab_tests.insert().values(
                test_id=test_id, model=name, champion_version=champion_version,
                challenger_version=challenger_version, config=to_jsonable(dict(config)), status="running",
                result=None, started_at=_utc(started_at).to_pydatetime()))
            return ABTestRecord.from_row(
                conn.execute(sa.select(ab_tests).where(ab_tests.c.test_id == test_id)).mappings().one())

    def get_ab_test(self, test_id: str) -> ABTestRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(ab_tests).where(ab_tests.c.test_id == test_id)).mappings().first()
        if row is None:
            raise KeyError(f"test_id: no A/B test {test_id!r}")
        return ABTestRecord.from_row(row)

    def list_ab_tests(self, *, model: str | None = None, status: str | None = None) -> list[ABTestRecord]:
        """A/B tests, oldest first, optionally of one model and in one status."""
        query = sa.select(ab_tests).order_by(ab_tests.c.started_at, ab_tests.c.test_id)
        if model is not None:
            query = query.where(ab_tests.c.model == model_name(model))
        if status is not None:
            query = query.where(ab_tests.c.status == status)
        with self.engine.connect() as conn:
            return [ABTestRecord.from_row(row) for row in conn.execute(query).mappings()]

    def running_ab_test(self, model: str) -> ABTestRecord | None:
        """The model's running test (serving code reads its seed, split and versions from here)."""
        tests = self.list_ab_tests(model=model, status="running")
        return tests[0] if tests else None

    def update_ab_test(self, test_id: str, *, result: Mapping[str, Any], status: str = "running",
                       ended_at: datetime | None = None) -> None:
        """Store a look's result; a status other than ``running`` closes the test."""
        if status not in AB_TEST_STATUSES:
            raise ValueError(f"status: one of {', '.join(AB_TEST_STATUSES)}, got {status!r}")
        with self.engine.begin() as conn:
            updated = conn.execute(ab_tests.update().where(ab_tests.c.test_id == test_id).values(
                result=to_jsonable(dict(result)), status=status,
                ended_at=None if ended_at is None else _utc(ended_at).to_pydatetime())).rowcount
        if not updated:
            raise KeyError(f"test_id: no A/B test {test_id!r}")

    def arm_counts(self, model: str, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
        """Predictions and distinct randomisation units served in [start, end) per version (the
        sample ratio check counts what was assigned, labelled or not)."""
        p = predictions.c
        query = (sa.select(p.model_version, sa.func.count(), sa.func.count(sa.distinct(p.unit_id)))
                 .where(*self._window(model, start, end, None)).group_by(p.model_version))
        with self.engine.connect() as conn:
            return {version: {"predictions": rows, "units": units} for version, rows, units in conn.execute(query)}
