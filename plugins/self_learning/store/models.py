"""Models: the registered models and their settings (the feature registry is ``features.py``).

A multiclass model's class list (``ModelSpec.classes``, migration 0011) is append-only in the
store: stored probability vectors are in the class order of the day they were served, so a class
may be added at the end (a class first served, or a re-registration naming a new one) but never
removed or moved. Re-registering with a shorter list keeps the stored one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ..core.types import ModelSpec, TaskKind, extend_classes, model_name, to_jsonable
from .tables import models

log = logging.getLogger(__name__)


class ModelsMixin:
    """Registering, reading and listing models (with the feature registry)."""

    def register_model(self, spec: ModelSpec, *, active: bool = True) -> None:
        """Create or update a model; its declared features join the feature registry."""
        row = model_row(spec) | {"active": active}
        with self.engine.begin() as conn:
            if spec.classes is not None:  # appended to the stored list, never replacing it
                self.dialect.lock(conn, f"self_learning.classes.{spec.name}")
                stored = conn.execute(sa.select(models.c.classes).where(models.c.name == spec.name)).scalar()
                row["classes"] = list(extend_classes(stored, spec.classes)[0] if stored else spec.classes)
            statement = self.dialect.insert(models).values(**row)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["name"],
                set_={k: statement.excluded[k] for k in ("task_kind", "feature_schema", "thresholds", "active",
                                                         "classes")}
                | {"updated_at": sa.func.current_timestamp()},
            ))
            self._register_features(conn, spec.name, dict(spec.feature_schema))
        self._models_known_in(spec.name, spec.task_kind)

    def get_model(self, name: str) -> ModelSpec:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(models).where(models.c.name == model_name(name))).mappings().first()
        if row is None:
            raise KeyError(f"model: {name!r} is not registered")
        return spec_of(row)

    def list_models(self, *, active_only: bool = True) -> list[ModelSpec]:
        query = sa.select(models).order_by(models.c.name)
        if active_only:
            query = query.where(models.c.active)
        with self.engine.connect() as conn:
            return [spec_of(row) for row in conn.execute(query).mappings()]

    def _served_classes(self, conn, model: str, served: Iterable[str]) -> tuple[str, ...]:
        """The model's class list on the caller's transaction, extended (and stored) with the
        classes in ``served`` it lacks; the extension is logged as a warning, not an error."""
        name = model_name(model)
        query = sa.select(models.c.task_kind, models.c.classes).where(models.c.name == name)
        row = conn.execute(query).first()
        if row is None:
            raise ValueError(f"model: {model!r} is not registered (register_model first)")
        if row.task_kind != TaskKind.MULTICLASS_CLASSIFICATION.value:
            raise ValueError(f"probabilities: {model!r} is a {row.task_kind} model; class probabilities are for "
                             "multiclass_classification models")
        served = list(dict.fromkeys(served))
        if all(label in row.classes for label in served):
            return tuple(row.classes)
        self.dialect.lock(conn, f"self_learning.classes.{name}")  # re-read: another writer may have extended it
        extended, warning = extend_classes(conn.execute(query).first().classes, served, model=name)
        if warning:
            conn.execute(models.update().where(models.c.name == name).values(
                classes=list(extended), updated_at=sa.func.current_timestamp()))
            log.warning("%s", warning)
        return extended

    def _models_known(self, conn) -> set[str]:
        """Registered model names, re-read only when asked about one not seen yet."""
        rows = conn.execute(sa.select(models.c.name, models.c.task_kind)).all()
        self._known_models = {name for name, _ in rows}
        self._multiclass_models = {name for name, kind in rows if kind == TaskKind.MULTICLASS_CLASSIFICATION.value}
        return self._known_models

    def _models_known_in(self, name: str, kind: TaskKind) -> None:
        """Keep the caches of known (and multiclass) models in step with a registration."""
        self._known_models.add(name)
        if kind is TaskKind.MULTICLASS_CLASSIFICATION:
            self._multiclass_models.add(name)
        else:
            self._multiclass_models.discard(name)



def model_row(spec: ModelSpec) -> dict[str, Any]:
    return {"name": spec.name, "task_kind": spec.task_kind.value, "feature_schema": dict(spec.feature_schema),
            "thresholds": to_jsonable(dict(spec.thresholds)),
            # only a multiclass model's row names the column (seeding runs on every schema revision)
            **({} if spec.classes is None else {"classes": list(spec.classes)})}


def spec_of(row) -> ModelSpec:
    classes = row.get("classes")
    return ModelSpec(row["name"], TaskKind(row["task_kind"]), row["feature_schema"] or {}, row["thresholds"] or {},
                     classes=None if classes is None else tuple(classes))
