"""Window reads: the predictions served in a window, with their outcomes and typed features.

Results are computed on these frames; PostgreSQL reads them by COPY (``copy_out.py``), SQLite by
a plain SELECT, both through the dialect's ``read_window`` into the same columns and dtypes.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from ..core.types import TaskKind, model_name
from .rows import PROBABILITY_PREFIX, _check_window, _utc
from .tables import WINDOW_COLUMNS, models, predictions


class WindowsMixin:
    """Counts and frames of the predictions served in [start, end) (with the feature registry)."""

    def count_predictions(self, model: str, start: datetime, end: datetime, *, version: str | None = None) -> int:
        """Predictions served in [start, end) - the denominator of label coverage."""
        query = sa.select(sa.func.count()).select_from(predictions).where(*self._window(model, start, end, version))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def count_predictions_by_version(self, model: str, start: datetime, end: datetime) -> dict[str, int]:
        """Predictions served in [start, end) per model version, in one scan."""
        query = (sa.select(predictions.c.model_version, sa.func.count()).where(*self._window(model, start, end, None))
                 .group_by(predictions.c.model_version))
        with self.engine.connect() as conn:
            return {version: count for version, count in conn.execute(query)}

    def _window(self, model, start, end, version):
        _check_window(start, end)
        start, end = _utc(start).to_pydatetime(), _utc(end).to_pydatetime()  # SQLite compares UTC text
        conditions = [predictions.c.model == model_name(model), predictions.c.served_at >= start,
                      predictions.c.served_at < end]
        if version is not None:
            conditions.append(predictions.c.model_version == version)
        return conditions

    def read_window(self, model: str, start: datetime, end: datetime, *, version: str | None = None,
                    labelled_only: bool = True, with_ids: bool = False, features: bool = True) -> pd.DataFrame:
        """Predictions served in [start, end), oldest first: model_version, served_at, predicted_value,
        predicted_label, actual_value, observed_at, error (predicted - actual), business_value (the
        outcome's, NaN where it carries none) and one typed column per feature (float64 numeric;
        ``category`` of text for categorical features and the version).
        A multiclass model's window (migration 0011) differs in three ways: ``predicted_label`` is
        the served class (text), ``actual_label`` (text, None where unlabelled) follows
        business_value, and one float64 ``proba_<class>`` column per class of the model's current
        list comes last (0 for a class appended after the row was served); its actual_value and
        error are NaN. ``core.multiclass.window_class_predictions`` turns it into (actual labels,
        ``ClassPredictions``).
        ``with_ids`` adds prediction_id and unit_id (costly at a million rows: every id becomes a
        Python string); ``features=False``
        leaves the feature columns out (metrics need none)."""
        registry = self.feature_registry(model) if features else {}
        numeric = sorted((p, k) for k, (kind, p) in registry.items() if kind == "numeric")
        categorical = sorted(k for k, (kind, _) in registry.items() if kind == "categorical")
        names = [c for c in WINDOW_COLUMNS if with_ids or c not in ("prediction_id", "unit_id")]
        conditions = self._window(model, start, end, version)
        classes = self._window_classes(model)
        labels = ["predicted_class", "actual_label"] if classes else []
        frame = self.dialect.read_window(conditions, labelled_only, [*names, *labels], numeric, categorical, classes)
        probabilities = [PROBABILITY_PREFIX + c for c in classes or ()]
        if classes:  # the served class is the multiclass predicted_label; labels as plain text (None: missing)
            frame["predicted_label"] = _text(frame["predicted_class"])
            frame["actual_label"] = _text(frame["actual_label"])
        frame = frame[[*names, *labels[1:], *(k for _, k in numeric), *categorical, *probabilities]]
        frame.insert(names.index("observed_at") + 1, "error", frame["predicted_value"] - frame["actual_value"])
        return frame

    def window_read_plan(self, model: str, start: datetime, end: datetime, *, version: str | None = None,
                         labelled_only: bool = True, analyze: bool = False) -> str:
        """The database's plan of ``read_window``'s join for this window, as text: PostgreSQL's
        EXPLAIN (with ``analyze``, EXPLAIN (ANALYZE, BUFFERS), which runs it) under the read's own
        settings, SQLite's EXPLAIN QUERY PLAN. A window read must cost O(window), not O(history):
        no sequential scan of ``outcomes`` (tests/integration/test_window_reads.py)."""
        registry = self.feature_registry(model)
        numeric = sorted((p, k) for k, (kind, p) in registry.items() if kind == "numeric")
        categorical = sorted(k for k, (kind, _) in registry.items() if kind == "categorical")
        names = [c for c in WINDOW_COLUMNS if c not in ("prediction_id", "unit_id")]
        return self.dialect.window_read_plan(self._window(model, start, end, version), labelled_only, names, numeric,
                                             categorical, self._window_classes(model), analyze=analyze)

    def _window_classes(self, model: str) -> tuple[str, ...] | None:
        """A multiclass model's class list (None for another kind or an unknown model)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(models.c.task_kind, models.c.classes)
                               .where(models.c.name == model_name(model))).first()
        if row is None or row.task_kind != TaskKind.MULTICLASS_CLASSIFICATION.value or not row.classes:
            return None
        return tuple(row.classes)


def _text(column: pd.Series) -> pd.Series:
    """Labels read as categories (PostgreSQL) or objects (SQLite) as object text, None where missing."""
    values = column.astype(object)
    return values.where(values.notna(), None)
