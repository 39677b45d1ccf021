"""The per-model feature registry: each feature key's kind and its position in the packed vector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from .. import pgcopy
from .rows import (
    RowError,
    _category_feature,
    _category_text,
    _infer_feature_kind,
    _number_problem,
    _numeric_feature,
    _scalar_kind,
)
from .tables import RESERVED, model_features


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

    def _encode_single(self, conn, model: str, features: Mapping[str, Any], present: Mapping[str, Any], *,
                       fast: bool) -> tuple[np.ndarray, dict[str, str]]:
        """One prediction's features as (numeric vector in registry order, categorical texts); unknown
        keys join the registry (``fast``: the cached registry is known to hold every key)."""
        if fast:
            registry = self._registry_cache.get(model)
        else:
            if model not in self._known_models and model not in self._models_known(conn):
                raise ValueError(f"model: {model!r} is not registered (register_model first)")
            known = self._registry_cache.get(model) or self._feature_registry(conn, model)
            registry = self._register_features(conn, model, {
                key: known[key][0] if key in known else _scalar_kind(value) for key, value in present.items()})
        kinds = {key: registry[key][0] for key in present}  # a key's registered kind wins
        vector = np.full(max((p for k, p in registry.values() if k == "numeric"), default=0), np.nan)
        categories = {}
        for key, kind in kinds.items():
            value = features[key]
            if kind == "numeric":
                problem = _number_problem(value)
                if problem:
                    raise ValueError(f"features.{key}: {problem}")
                vector[registry[key][1] - 1] = float(value)
            else:
                try:
                    categories[key] = _category_text(value)
                except ValueError as error:
                    raise ValueError(f"features.{key}: {error}") from None
        return vector, categories

    def _encode_group(self, conn, model: str, meta: pd.DataFrame, features: pd.DataFrame, offset: int):
        """Rows of one model as stored columns; feature values checked against the registry."""
        errors: list[RowError] = []
        features = features.dropna(axis=1, how="all")
        registry = self._feature_registry(conn, model)
        kinds = {key: registry[key][0] if key in registry else _infer_feature_kind(features[key])
                 for key in features.columns}
        bad = pd.Series(False, index=meta.index)
        converted = {}
        for key, kind in kinds.items():
            values, problems = (_numeric_feature if kind == "numeric" else _category_feature)(features[key])
            for i, reason in problems.items():
                errors.append(RowError(offset + int(i), meta.at[i, "prediction_id"], f"features.{key}", reason))
                bad[i] = True
            converted[key] = values
        registry = self._register_features(conn, model, kinds)
        keep = meta.index[~bad]
        width = max((p for k, p in registry.values() if k == "numeric"), default=0)
        matrix = np.full((len(keep), width), np.nan)
        categorical = {}
        for key, values in converted.items():
            if kinds[key] == "numeric":
                matrix[:, registry[key][1] - 1] = values.loc[keep].to_numpy()
            else:
                categorical[key] = values.loc[keep].reset_index(drop=True)
        rows = meta.loc[keep, [*RESERVED, "_served_given"]].reset_index()
        rows["cat_json"] = pgcopy.json_objects(pd.DataFrame(categorical, index=rows.index))
        return (rows, matrix), errors
