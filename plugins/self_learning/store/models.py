"""Models: the registered models and their settings (the feature registry is ``features.py``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..core.types import ModelSpec, TaskKind, model_name, to_jsonable
from .tables import models


class ModelsMixin:
    """Registering, reading and listing models (with the feature registry)."""

    def register_model(self, spec: ModelSpec, *, active: bool = True) -> None:
        """Create or update a model; its declared features join the feature registry."""
        row = model_row(spec) | {"active": active}
        with self.engine.begin() as conn:
            statement = self.dialect.insert(models).values(**row)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["name"],
                set_={k: statement.excluded[k] for k in ("task_kind", "feature_schema", "thresholds", "active")}
                | {"updated_at": sa.func.current_timestamp()},
            ))
            self._register_features(conn, spec.name, dict(spec.feature_schema))

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

    def _models_known(self, conn) -> set[str]:
        """Registered model names, re-read only when asked about one not seen yet."""
        self._known_models = {name for (name,) in conn.execute(sa.select(models.c.name))}
        return self._known_models



def model_row(spec: ModelSpec) -> dict[str, Any]:
    return {"name": spec.name, "task_kind": spec.task_kind.value, "feature_schema": dict(spec.feature_schema),
            "thresholds": to_jsonable(dict(spec.thresholds))}


def spec_of(row) -> ModelSpec:
    return ModelSpec(row["name"], TaskKind(row["task_kind"]), row["feature_schema"] or {}, row["thresholds"] or {})
