"""Predictions: single and bulk registration (the write side serving code calls).

Registering the same prediction twice is a no-op; a different payload under a known id is
rejected with the differing fields named, and the stored row is untouched. How new rows reach
the table (binary COPY, or executemany) is the dialect's ``insert_new_predictions``; the
comparison of re-sent rows with the stored ones is the same on every database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..core.multiclass import PROBABILITY_TOLERANCE
from ..core.types import TaskKind
from .ingest import stored_rows
from .rows import (
    _P,
    PROBABILITY_PREFIX,
    ConflictError,
    IngestReport,
    RowError,
    _database_now,
    _differing_fields,
    _is_missing,
    _single_class_row,
    _single_prediction_row,
    _utc,
    _validate_predictions,
    _value_mismatch,
)
from .tables import DEFAULT_VERSION, models, predictions

NO_FEATURES: Mapping[str, Any] = MappingProxyType({})  # a prediction sent without features (None is refused)


class PredictionsMixin:
    """Prediction writes of :class:`FeedbackStore` (with the feature registry and the write plumbing)."""

    def register_prediction(
        self,
        model: str,
        predicted_value: float | None = None,
        features: Mapping[str, Any] = NO_FEATURES,
        *,
        prediction_id: str | None = None,
        model_version: str = DEFAULT_VERSION,
        predicted_label: int | str | None = None,
        probabilities: Mapping[str, float] | None = None,
        unit_id: str | None = None,
        served_at: datetime | None = None,
    ) -> str:
        """Store one prediction; return its id (a new UUID unless given).

        ``model_version``: a version of the model registry once the model has one (else any, with
        a warning logged; see ``store/versions.py``). Feature keys outside the model's closed set
        are refused naming the closest known one (``store/features.py``).

        A multiclass model's prediction is its ``probabilities`` ({class: p}, non-negative, summing
        to 1 within ``core.multiclass.PROBABILITY_TOLERANCE``; a class left out is 0) and the
        served class ``predicted_label`` (text; the most probable class when not sent). Its
        predicted_value is P(served class) (send none). A class outside the model's class list is
        appended to it, with a warning logged. Raises ``ValueError`` naming the field for bad
        input and ``ConflictError`` when the id is already stored with a different payload.
        """
        prediction_id = prediction_id if prediction_id is not None else uuid.uuid4().hex
        served_class = None
        if probabilities is not None:
            predicted_value, served_class, probabilities = _single_class_row(predicted_value, predicted_label,
                                                                             probabilities)
            predicted_label = None
        row = _single_prediction_row(model, predicted_value, features, prediction_id=prediction_id,
                                     model_version=model_version, predicted_label=predicted_label,
                                     unit_id=unit_id, served_at=served_at)
        self._check_served_version(model, model_version)  # after the row's checks: a text of 1..128 characters
        present = {key: value for key, value in features.items() if not _is_missing(value)}
        cached = self._registry_cache.get(model)
        # The usual call (known model, known feature keys) is one INSERT: on PostgreSQL it runs in
        # autocommit, one round trip instead of BEGIN / INSERT / COMMIT.
        fast = self.dialect.autocommit_single_inserts and model in self._known_models and cached is not None and all(
            key in cached for key in present) and served_class is None
        if fast and model in self._multiclass_models:
            raise ValueError(f"probabilities: required for the multiclass_classification model {model!r}")
        # ON CONFLICT DO NOTHING waits for a concurrent writer of the same id to finish; the next
        # statement (READ COMMITTED) then sees its row, so the comparison below is against the winner.

        def attempt() -> str:
            connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") if fast \
                else self.engine.begin()
            with connection as conn:
                vector, categories = self._encode_single(conn, model, features, present, fast=fast)
                stored_vector = self.dialect.encode_vector(vector)
                row_classes = {}
                if served_class is not None:
                    classes = self._served_classes(conn, model, [served_class, *probabilities])
                    row_classes = {"predicted_class": served_class, "class_probabilities": self.dialect.encode_vector(
                        np.array([probabilities.get(c, 0.0) for c in classes]))}
                elif model in self._multiclass_models:
                    raise ValueError(f"probabilities: required for the multiclass_classification model {model!r}")
                inserted = conn.execute(self._insert_prediction, {**row, **row_classes, "num_features": stored_vector,
                                                                  "cat_features": categories}).first()
                if inserted is None:
                    stored = stored_rows(conn, predictions, [prediction_id])[prediction_id]
                    compared = {"served_at": _utc(stored["served_at"])} | row | {  # the server chose it if not given
                        "predicted_class": served_class, "class_probabilities": row_classes.get("class_probabilities")}
                    differing = _differing_fields(compared | {"cat_json": json.dumps(categories)}, vector, stored)
                    if differing:
                        raise ConflictError(f"prediction_id: {prediction_id!r} already registered with a different "
                                            f"payload ({', '.join(differing)} differ)")
            return prediction_id

        return self._retrying(attempt)

    def register_predictions(self, rows, *, batch_size: int = 100_000, quarantine: bool = False,
                             writers: int | None = None) -> IngestReport:
        """Bulk registration from a DataFrame or an iterable of mappings.

        A DataFrame carries either a ``features`` column of mappings or one column per feature
        (every column that is not one of ``RESERVED``). Bad rows are reported (and with
        ``quarantine`` also stored in ``ingest_rejects``); the good rows of each batch land in
        one transaction. On PostgreSQL two batches are validated, encoded and copied at once on
        two connections (``writers``; measured 61k -> 91k rows/s on 2 cores), unless an id
        repeats across batches: then batches go one by one, so the first one always wins.
        """
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
        batches = [(frame.iloc[start:start + batch_size].reset_index(drop=True), start)
                   for start in range(0, len(frame), batch_size)]
        if writers is None:
            writers = self.dialect.bulk_writers
        if writers > 1 and len(batches) > 1 and "prediction_id" in frame.columns:
            batch_of = np.arange(len(frame)) // batch_size
            ids = frame["prediction_id"]
            repeated = ids.duplicated(keep=False).to_numpy()
            if repeated.any() and pd.Series(batch_of[repeated]).groupby(ids[repeated].to_numpy()).nunique().max() > 1:
                writers = 1

        def register(batch) -> IngestReport:
            return self._register_batch(*batch, quarantine, _validate_predictions(*batch))

        # One batch ahead is validated while another is written (the GIL is free during COPY waits).
        with ThreadPoolExecutor(max_workers=max(writers, 2)) as pool:
            if writers > 1:
                reports = list(pool.map(register, batches))
            else:
                reports, upcoming = [], [pool.submit(_validate_predictions, *b) for b in batches[:1]]
                for number, batch in enumerate(batches):
                    validated = upcoming.pop().result()
                    if number + 1 < len(batches):
                        upcoming.append(pool.submit(_validate_predictions, *batches[number + 1]))
                    reports.append(self._register_batch(*batch, quarantine, validated))
        totals = {key: sum(getattr(r, key) for r in reports) for key in ("received", "inserted", "unchanged",
                                                                           "corrected")}
        self._refresh_statistics("predictions", totals["inserted"])
        return IngestReport(**totals, rejected=[e for r in reports for e in r.rejected])

    def _register_batch(self, frame: pd.DataFrame, offset: int, quarantine: bool, validated) -> IngestReport:
        """One batch in one transaction, re-run whole if PostgreSQL picks it as a deadlock victim
        (each attempt starts from the validated rows as they came, so nothing is counted twice)."""
        validated_meta, features, validation_errors = validated

        def attempt() -> IngestReport:
            meta, errors = validated_meta.copy(), list(validation_errors)
            with self.engine.begin() as conn:
                kinds = dict(conn.execute(sa.select(models.c.name, models.c.task_kind)).all())
                unknown = ~meta["model"].isin(kinds.keys()) & meta["_ok"]
                for i in np.flatnonzero(unknown.to_numpy()):
                    errors.append(RowError(offset + int(i), meta.at[i, "prediction_id"], "model",
                                           f"{meta.at[i, 'model']!r} is not registered (register_model first)"))
                meta.loc[unknown, "_ok"] = False
                for (model, version), pairs in meta[meta["_ok"]].groupby(["model", "model_version"], sort=False):
                    problem = self._version_problem(conn, model, version)
                    errors.extend(RowError(offset + int(i), meta.at[i, "prediction_id"], "model_version", problem)
                                  for i in pairs.index if problem)
                    if problem:
                        meta.loc[pairs.index, "_ok"] = False
                if pd.isna(meta["served_at"]).any():
                    meta["served_at"] = meta["served_at"].fillna(_database_now(conn))  # _served_given keeps which
                inserted, unchanged = 0, int(meta["_repeat"].sum())
                for model, model_rows in meta[meta["_ok"]].groupby("model", sort=False):
                    group, class_errors = self._class_group(conn, model, kinds[model], model_rows, offset)
                    errors.extend(class_errors)
                    rows, row_errors = self._encode_group(conn, model, group, features.loc[group.index], offset)
                    errors.extend(row_errors)
                    new, same, conflicts = self._write_predictions(conn, rows)
                    inserted += new
                    unchanged += same
                    errors.extend(RowError(offset + int(i), pid, "prediction_id", reason)
                                  for i, pid, reason in conflicts)
                errors.sort(key=lambda e: e.row)
                if quarantine and errors:
                    self._quarantine(conn, "prediction", errors, frame, offset)
            return IngestReport(len(frame), inserted, unchanged, 0, errors)

        return self._retrying(attempt)

    def _class_group(self, conn, model: str, kind: str, group: pd.DataFrame, offset: int
                     ) -> tuple[pd.DataFrame, list[RowError]]:
        """One model's rows with their ``class_probabilities`` (a vector in the model's class order,
        the list first extended with the classes the rows name, or None for a model of another
        kind). Rows of a multiclass model without probabilities, or with them for another kind,
        are rejected naming ``probabilities``."""
        multiclass = kind == TaskKind.MULTICLASS_CLASSIFICATION.value
        carrying = group["predicted_class"].notna()
        missing_value = group["_value_missing"] if "_value_missing" in group.columns else carrying & False
        bad = ~carrying if multiclass else carrying | missing_value
        reason = (f"required for the multiclass_classification model {model!r} (one {PROBABILITY_PREFIX}<class> "
                  "column per class)") if multiclass else (
            f"{model!r} is a {kind} model; class probabilities are for multiclass_classification models")
        errors = [RowError(offset + int(i), group.at[i, "prediction_id"], "predicted_value", "is required")
                  if not multiclass and missing_value[i] else
                  RowError(offset + int(i), group.at[i, "prediction_id"], "probabilities", reason)
                  for i in group.index[bad]]
        if multiclass:
            given = group["_given_value"]
            mismatch = ~bad & given.notna() & ((given - group["predicted_value"]).abs() > PROBABILITY_TOLERANCE)
            errors += [RowError(offset + int(i), group.at[i, "prediction_id"], "predicted_value",
                                _value_mismatch(given[i], group.at[i, "predicted_value"]))
                       for i in group.index[mismatch]]
            bad |= mismatch
        group = group[~bad]
        if not multiclass or group.empty:
            return group.assign(class_probabilities=None), errors
        columns = [c for c in group.columns if c.startswith(_P) and group[c].notna().any()]
        classes = self._served_classes(conn, model, [*(c[len(_P):] for c in columns), *group["predicted_class"]])
        position = {label: j for j, label in enumerate(classes)}
        matrix = np.zeros((len(group), len(classes)))
        for column in columns:
            matrix[:, position[column[len(_P):]]] = group[column].fillna(0.0).to_numpy()
        return group.assign(class_probabilities=list(matrix)), errors

    def _write_predictions(self, conn, encoded) -> tuple[int, int, list[tuple[int, str, str]]]:
        """Insert new rows; compare rows whose id exists. Returns (inserted, unchanged, conflicts).
        How the new rows go in, safely against concurrent writers, is the dialect's
        (``insert_new_predictions``); the stored rows it hands back are compared here."""
        rows, matrix = encoded
        if rows.empty:
            return 0, 0, []
        is_new, existing = self.dialect.insert_new_predictions(conn, rows, matrix)
        conflicts = []
        stored_before = np.flatnonzero(~is_new)
        # Plain dicts: a pandas row lookup per stored id cost more than the comparison itself.
        for i, row in zip(stored_before, rows.iloc[stored_before].to_dict("records"), strict=True):
            differing = _differing_fields(row, matrix[i], existing[row["prediction_id"]])
            if differing:
                conflicts.append((row["index"], row["prediction_id"],
                                  f"already registered with a different payload ({', '.join(differing)} differ)"))
        return int(is_new.sum()), int((~is_new).sum()) - len(conflicts), conflicts

