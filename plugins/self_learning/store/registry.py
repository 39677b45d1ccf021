"""The model registry: trained versions, their artifacts and which one is the champion.

A version's artifact is written once and a champion is never re-pointed: the retrain and weekly
steps load the champion's artifact, so re-pointing it would make the next run load another file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..core.records import ModelVersion
from ..core.types import model_name, to_jsonable
from .rows import _check_window, _text_problem, _utc
from .tables import VERSION_STATUSES, model_versions


class RegistryMixin:
    """Model versions: register, list, mark, promote (with the models area for known names)."""

    def register_version(self, model: str, version: str, *, status: str = "challenger",
                         artifact_uri: str | None = None, training_window: tuple[datetime, datetime] | None = None,
                         metrics: Mapping[str, Any] | None = None, created_by: str | None = None) -> ModelVersion:
        """Record a trained version (idempotent: re-registering refreshes window and metrics and
        keeps the status it has reached). Returns the stored row as a ``ModelVersion``.

        The artifact is written once: the retrain and weekly steps load the champion's artifact,
        so re-pointing a stored version (issue 13: ``register_version(model, <champion>,
        artifact_uri="file:///anywhere/x.pkl")`` made the next run unpickle that file) is a
        ``ValueError`` naming ``artifact_uri`` and the stored row is untouched. Re-registering
        with the same URI or none keeps it; a version without one may get one, unless it is
        already the champion (register a new version and promote it)."""
        name = model_name(model)
        for field, value, limit in (("version", version, 128), ("created_by", created_by, 256),
                                    ("artifact_uri", artifact_uri, 2048)):
            if value is not None and (problem := _text_problem(value, limit)):
                raise ValueError(f"{field}: {problem}")
        if status not in VERSION_STATUSES or status == "champion":
            raise ValueError(f"status: a new version is one of {[s for s in VERSION_STATUSES if s != 'champion']}; "
                             f"make it champion with promote(), got {status!r}")
        start, end = training_window or (None, None)
        if training_window is not None:
            _check_window(start, end)
        row = {"model": name, "version": version, "status": status, "artifact_uri": artifact_uri,
               "training_window_start": None if start is None else _utc(start).to_pydatetime(),
               "training_window_end": None if end is None else _utc(end).to_pydatetime(),
               "metrics": to_jsonable(dict(metrics or {})), "created_by": created_by}
        statement = self.dialect.insert(model_versions).values(**row)
        this_version = (model_versions.c.model == name, model_versions.c.version == version)
        with self.engine.begin() as conn:
            if name not in self._models_known(conn):
                raise ValueError(f"model: {name!r} is not registered (register_model first)")
            stored = conn.execute(sa.select(model_versions.c.artifact_uri, model_versions.c.status)
                                  .where(*this_version)).first()
            if stored is not None and artifact_uri is not None:
                _check_artifact_unchanged(name, version, stored.artifact_uri, artifact_uri, stored.status)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["model", "version"],
                set_={k: statement.excluded[k] for k in ("training_window_start", "training_window_end", "metrics",
                                                          "created_by")}
                | {"artifact_uri": sa.func.coalesce(model_versions.c.artifact_uri, statement.excluded.artifact_uri)}))
            self._forget_versions(name)  # predictions of a model with versions must name one of them
            stored_row = conn.execute(sa.select(model_versions).where(*this_version)).mappings().one()
            result = ModelVersion.from_row(stored_row)
            if artifact_uri is not None:  # a concurrent registration wrote another artifact first: roll back
                _check_artifact_unchanged(name, version, result.artifact_uri, artifact_uri, result.status)
            return result

    def get_champion(self, model: str) -> ModelVersion | None:
        """The version serving as champion, or None before any promotion."""
        query = sa.select(model_versions).where(model_versions.c.model == model_name(model),
                                                model_versions.c.status == "champion")
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return ModelVersion.from_row(row) if row else None

    def version_history(self, model: str) -> list[ModelVersion]:
        """Every registered version of a model, oldest first."""
        query = (sa.select(model_versions).where(model_versions.c.model == model_name(model))
                 .order_by(model_versions.c.created_at, model_versions.c.version))
        with self.engine.connect() as conn:
            return [ModelVersion.from_row(row) for row in conn.execute(query).mappings()]

    def set_version_status(self, model: str, version: str, status: str) -> None:
        """Mark a version challenger, archived or rejected (champions change only by promote())."""
        if status not in VERSION_STATUSES or status == "champion":
            raise ValueError(f"status: one of challenger, archived, rejected (champion via promote()), got {status!r}")
        with self.engine.begin() as conn:
            version_exists(conn, model, version)
            conn.execute(model_versions.update().where(model_versions.c.model == model,
                                                       model_versions.c.version == version).values(status=status))

    def promote(self, model: str, version: str) -> str | None:
        """Make ``version`` the champion and archive the previous one, in one transaction; returns
        the previous champion's version (None if there was none). Promoting the champion is a no-op."""
        name = model_name(model)
        with self.engine.begin() as conn:
            version_exists(conn, name, version)
            self.dialect.lock(conn, f"self_learning.champion.{name}")  # one promotion per model at a time
            previous = conn.execute(sa.select(model_versions.c.version).where(
                model_versions.c.model == name, model_versions.c.status == "champion")).scalar()
            if previous == version:
                return previous
            conn.execute(model_versions.update().where(model_versions.c.model == name,
                                                       model_versions.c.status == "champion").values(status="archived"))
            conn.execute(model_versions.update().where(model_versions.c.model == name,
                                                       model_versions.c.version == version).values(status="champion"))
        return previous


def _check_artifact_unchanged(model: str, version: str, stored: str | None, given: str, status: str) -> None:
    """A version's artifact is written once, and a champion's is never attached afterwards."""
    if stored is not None and stored != given:
        raise ValueError(f"artifact_uri: {model} {version} is stored with artifact {stored!r}; an artifact is "
                         f"written once (register a new version for a new artifact), got {given!r}")
    if stored is None and status == "champion":
        raise ValueError(f"artifact_uri: {model} {version} is the champion; an artifact can't be attached to it "
                         f"after promotion (register a new version and promote it), got {given!r}")


def version_exists(conn, model: str, version: str) -> None:
    """A ``KeyError`` naming ``version`` unless ``model`` has that version registered."""
    found = conn.execute(sa.select(sa.func.count()).select_from(model_versions).where(
        model_versions.c.model == model, model_versions.c.version == version)).scalar_one()
    if not found:
        raise KeyError(f"version: {model!r} has no registered version {version!r}")
