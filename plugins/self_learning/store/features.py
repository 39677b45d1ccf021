"""The per-model feature registry: each feature key's kind and its position in the packed vector.

A key's kind comes from the model's declared ``feature_schema`` when it declares one (registered
with the model, so declared kinds are authoritative), else from the first registration that
carries the key: a bulk batch decides on all of the batch's values for it, a single registration
on its one value, refusing decimal text ("120.5") that could be either (see ``rows._scalar_kind``).
After that the kind never changes: a value of the other kind is refused naming the feature.
A model registers at most ``feature_cap(thresholds)`` keys (500 unless it sets ``max_features``).

A model's set of keys is closed by its first stored prediction (issue 20: a typo, ``spendd``,
silently became a new feature, split the data of ``spend`` and was drift-tested on its own): the
keys declared with the model plus those of its first registration (a bulk batch: every column of
it; several batches of one call are taken one by one). Later, a key outside the set is refused
naming it and the closest registered key (``difflib``). The set is extended on purpose only:
``add_features(model, {key: kind})``, ``register_model`` with a larger ``feature_schema``, or a
model whose ``thresholds["extend_features"]`` is true (keys register as they come, as before).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..core.types import FEATURE_KINDS, feature_cap, model_name, shown
from . import codec
from .rows import (
    RowError,
    _category_feature,
    _category_text,
    _infer_feature_kind,
    _key_problem,
    _number_problem,
    _numeric_feature,
    _scalar_kind,
    _undecided_kind,
)
from .tables import RESERVED, model_features, models, predictions


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

    def add_features(self, model: str, feature_schema: Mapping[str, str]) -> dict[str, tuple[str, int]]:
        """Extend a model's closed set of feature keys on purpose: ``{key: "numeric" | "categorical"}``.
        The keys join the registry and the model's declared ``feature_schema``; a key already
        registered with the same kind is a no-op, with the other kind a ``ValueError``. Returns
        the registry (key -> (kind, position))."""
        name = model_name(model)
        for key, kind in feature_schema.items():
            if kind not in FEATURE_KINDS:
                raise ValueError(f"feature_schema[{shown(key)}]: kind must be 'numeric' or 'categorical', "
                                 f"got {shown(kind)}")
        with self.engine.begin() as conn:
            declared = conn.execute(sa.select(models.c.feature_schema).where(models.c.name == name)).first()
            if declared is None:
                raise ValueError(f"model: {name!r} is not registered (register_model first)")
            registry = self._register_features(conn, name, dict(feature_schema))
            conn.execute(models.update().where(models.c.name == name).values(
                feature_schema={**(declared.feature_schema or {}), **feature_schema}))
        return registry

    def _register_features(self, conn, model: str, kinds: Mapping[str, str]) -> dict[str, tuple[str, int]]:
        """Register a model's declared features (``register_model``, ``add_features``): a declared
        kind that differs from the key's registered one, a bad key or one beyond the cap is a
        ``ValueError``. Declared keys extend a closed key set."""
        registry = self._registry_cache.get(model) or self._feature_registry(conn, model)
        for key, kind in kinds.items():
            if key in registry and registry[key][0] != kind:
                raise ValueError(f"feature_schema[{key!r}]: declared {kind}, but the feature is registered as "
                                 f"{registry[key][0]} (a feature's kind never changes: use a new feature name)")
        registry, refused = self._add_features(conn, model, kinds, declared=True)
        for key, reason in refused.items():
            raise ValueError(f"feature_schema[{key!r}]: {reason}")
        return registry

    def _add_features(self, conn, model: str, kinds: Mapping[str, str], *, declared: bool = False
                      ) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
        """Add unknown feature keys at the next free position of their kind, up to the model's cap.
        Keys sent with predictions (not ``declared``) join only a model without a stored prediction
        yet (its first registration) or one whose ``thresholds["extend_features"]`` is true. Returns the
        registry (a key registered meanwhile keeps its registered kind) and, by key, why a key
        was refused."""
        registry = self._registry_cache.get(model, {})
        if all(key in registry for key in kinds):
            return registry, {}
        registry = self._feature_registry(conn, model)
        if all(key in registry for key in kinds):
            self._registry_cache[model] = registry
            return registry, {}
        # Positions are allocated (and the cap counted) under a per-model lock; the registry is
        # re-read once it is held, since a concurrent writer may have added keys meanwhile.
        self.dialect.lock(conn, f"self_learning.features.{model}")
        registry = self._feature_registry(conn, model)
        thresholds = conn.execute(sa.select(models.c.thresholds).where(models.c.name == model)).scalar() or {}
        cap = feature_cap(thresholds)
        closed = dict(registry) if not declared and not extends_features(thresholds) and conn.execute(
            sa.select(predictions.c.prediction_id).where(predictions.c.model == model).limit(1)).first() else None
        refused = {}
        for key, kind in kinds.items():
            if key in registry:
                continue
            if closed is not None:
                refused[key] = unknown_feature(model, key, closed)
                continue
            problem = _key_problem(key)
            if problem or len(registry) >= cap:
                refused[key] = problem or (
                    f"the model {model!r} has {len(registry)} registered features, its cap (thresholds.max_features) "
                    f"is {cap}: a new feature key is refused")
                continue
            position = 1 + max((p for k, p in registry.values() if k == kind), default=0)
            conn.execute(model_features.insert().values(model=model, feature=key, kind=kind, position=position))
            registry[key] = (kind, position)
        self._registry_cache.pop(model, None)  # cached only once committed (next lookup re-reads)
        return registry, refused

    def _encode_single(self, conn, model: str, features: Mapping[str, Any], present: Mapping[str, Any], *,
                       fast: bool) -> tuple[np.ndarray, dict[str, str]]:
        """One prediction's features as (numeric vector in registry order, categorical texts); unknown
        keys join the registry (``fast``: the cached registry is known to hold every key). A new
        key's kind is decided on its one value; decimal text is refused as undecided."""
        if fast:
            registry = self._registry_cache.get(model)
        else:
            if model not in self._known_models and model not in self._models_known(conn):
                raise ValueError(f"model: {model!r} is not registered (register_model first)")
            known = self._registry_cache.get(model) or self._feature_registry(conn, model)
            kinds = {}
            for key, value in present.items():
                kinds[key] = known[key][0] if key in known else _scalar_kind(value)
                if kinds[key] is None:
                    raise ValueError(f"features.{key}: {_undecided_kind(key, value)}")
            registry, refused = self._add_features(conn, model, kinds)
            for key, reason in refused.items():
                raise ValueError(f"features.{key}: {reason}")
        vector = np.full(max((p for k, p in registry.values() if k == "numeric"), default=0), np.nan)
        categories = {}
        for key in present:
            kind, position = registry[key]  # a key's registered kind wins
            value = features[key]
            if kind == "numeric":
                problem = _number_problem(value)
                if problem:
                    raise ValueError(f"features.{key}: {problem}")
                vector[position - 1] = float(value)
            else:
                try:
                    categories[key] = _category_text(value)
                except ValueError as error:
                    raise ValueError(f"features.{key}: {error}") from None
        return vector, categories

    def _encode_group(self, conn, model: str, meta: pd.DataFrame, features: pd.DataFrame, offset: int):
        """Rows of one model as stored columns; feature values checked against the registry.
        A row carrying a value for a key that cannot be registered (undecided kind, beyond the
        model's cap) is rejected naming ``features.<key>``; the batch's other rows land."""
        errors: list[RowError] = []
        features = features.dropna(axis=1, how="all")
        registry = self._feature_registry(conn, model)
        bad = pd.Series(False, index=meta.index)

        def reject(key: str, problems: Mapping[Any, str]) -> None:
            for i, reason in problems.items():
                errors.append(RowError(offset + int(i), meta.at[i, "prediction_id"], f"features.{key}", reason))
                bad[i] = True

        inferred = {}
        for key in features.columns:
            if key not in registry:
                inferred[key] = _infer_feature_kind(features[key])
                if inferred[key] is None:
                    column = features[key].dropna()
                    reject(key, dict.fromkeys(column.index, _undecided_kind(key, column.iloc[0])))
        decided = {key: kind for key, kind in inferred.items() if kind is not None}
        registry, refused = self._add_features(conn, model, decided) if decided else (registry, {})
        for key, reason in refused.items():
            reject(key, dict.fromkeys(features.index[features[key].notna()], reason))
        converted = {}
        for key in features.columns:
            if key in registry:
                values, problems = (_numeric_feature if registry[key][0] == "numeric" else _category_feature)(
                    features[key])
                reject(key, problems)
                converted[key] = values
        keep = meta.index[~bad]
        width = max((p for k, p in registry.values() if k == "numeric"), default=0)
        matrix = np.full((len(keep), width), np.nan)
        categorical = {}
        for key, values in converted.items():
            kind, position = registry[key]
            if kind == "numeric":
                matrix[:, position - 1] = values.loc[keep].to_numpy()
            else:
                categorical[key] = values.loc[keep].reset_index(drop=True)
        rows = meta.loc[keep, [*RESERVED, "predicted_class", "class_probabilities", "_served_given"]].reset_index()
        rows["cat_json"] = codec.json_objects(pd.DataFrame(categorical, index=rows.index))
        return (rows, matrix), errors


def extends_features(thresholds: Mapping[str, Any]) -> bool:
    """Whether a model registers new feature keys as they come (``thresholds["extend_features"]``,
    false unless set): its key set is otherwise closed after its declaration or first registration."""
    extend = thresholds.get("extend_features", False)
    if not isinstance(extend, bool):
        raise ValueError(f"thresholds.extend_features: must be true or false, got {shown(extend)}")
    return extend


def unknown_feature(model: str, key: str, registry: Mapping[str, tuple[str, int]]) -> str:
    """Why ``key`` is refused for a model whose key set is closed: the closest registered key (a
    typo) and how to add a new one on purpose."""
    close = difflib.get_close_matches(key, list(registry), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    known = sorted(registry)
    listed = (", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")) or "none"
    return (f"not a feature of {model!r} ({hint}its features: {listed}); a new feature is added on purpose: "
            f"store.add_features({model!r}, {{{key!r}: 'numeric' or 'categorical'}})")
