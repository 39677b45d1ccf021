"""The per-model feature registry: each feature key's kind and its position in the packed vector."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from .tables import model_features


class FeatureRegistryMixin:
    """Feature keys of each model, append-only (a key keeps its kind and position for good)."""

    def feature_registry(self, model: str) -> dict[str, tuple[str, int]]:
        """Feature key -> (kind, position) for a model."""
        with self.engine.connect() as conn:
            return self._feature_registry(conn, model)

    def _feature_registry(self, conn, model: str) -> dict[str, tuple[str, int]]:
        rows = conn.execute(sa.select(model_features.c.feature, model_features.c.kind, model_features.c.position)
                            .where(model_features.c.model == model))
        return {feature: (kind, position) for feature, kind, position in rows}

    def _register_features(self, conn, model: str, kinds: Mapping[str, str]) -> dict[str, tuple[str, int]]:
        """Add unknown feature keys at the next free position of their kind; return the registry."""
        registry = self._registry_cache.get(model, {})
        if all(key in registry for key in kinds):
            return registry
        registry = self._feature_registry(conn, model)
        if all(key in registry for key in kinds):
            self._registry_cache[model] = registry
            return registry
        if self.is_postgres:  # positions are allocated under a per-model lock
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                         {"key": f"self_learning.features.{model}"})
            registry = self._feature_registry(conn, model)
        for key, kind in kinds.items():
            if key in registry:
                continue
            position = 1 + max((p for k, p in registry.values() if k == kind), default=0)
            conn.execute(model_features.insert().values(model=model, feature=key, kind=kind, position=position))
            registry[key] = (kind, position)
        self._registry_cache.pop(model, None)  # cached only once committed (next lookup re-reads)
        return registry
