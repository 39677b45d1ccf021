"""The feedback store: every SQL statement of the package lives in this package.

Predictions, their real outcomes and every result the DAGs produce, in PostgreSQL (production)
or an embedded SQLite file (demo, zero set-up) through one SQLAlchemy Core code path. What the
two databases do differently (binary COPY for bulk writes and window reads, advisory locks, how a
feature vector is stored ...) is one object per database in ``dialects.py``; no other module
asks which database it is on.

One module per area, each a mixin that :class:`FeedbackStore` composes (so ``store.<method>``
keeps one flat API for serving code and operators):

- ``models.py`` models; ``features.py`` each model's feature registry;
- ``predictions.py`` and ``outcomes.py`` the writes (``ingest.py``: their shared plumbing, COPY
  in and deadlock re-runs); ``inbox.py`` the outcome inbox and source watermarks;
- ``windows.py`` window reads (PostgreSQL's COPY reader in ``copy_out.py``);
- ``results.py`` results and learning reports; ``day_statistics.py`` the sequential monitor's
  statistics per model, check and day; ``profiles.py`` each day's profile (``core/profiles.py``);
  ``alerts.py`` alerts and retrain requests;
- ``baselines.py`` each model's pinned baseline (set from the serving client with
  ``store.set_baseline(model, start, end)`` or ``store.baseline_from_champion(model)``);
- ``registry.py`` model versions and champions; ``ab_tests.py`` A/B tests;
- ``retention.py`` what is deleted when;
- ``rows.py`` row validation, ``codec.py`` the binary COPY codec, ``tables.py`` the tables.

Storage of features: numeric features are packed float8 bytes (``bytea`` on PostgreSQL, a JSON
list on SQLite) in the order of the model's feature registry (``model_features``), categorical
ones a JSON object. Formatting floats as JSON text and parsing them again costs more than
everything else in ingest, and sending a ``float8[]`` costs the server a call per element
(bench/ingest_bench.py, bench/daily_bench.py).

Guarantees:
- registering the same prediction twice is a no-op; a different payload under a known id is
  rejected with the differing fields named, and the stored row is untouched;
- an outcome may arrive before its prediction (an orphan, see ``orphan_outcomes``) or days
  later; it is joined whenever both exist;
- a corrected outcome replaces the value and the old one is kept in ``outcome_history``;
- an outcome may carry what it was worth (``business_value``, e.g. the unit's revenue; migration
  0010), which an A/B test can be judged on; window reads return it (NaN where none);
- a multiclass model (migration 0011) keeps its class list with the model, appended to (with a
  logged warning) when a class is first served; a prediction stores its served class and its class
  probabilities (in the list's order of the day: packed float8 on PostgreSQL, JSON on SQLite), an
  outcome its actual class (``actual_label``); window reads return them (``proba_<class>`` columns);
- result writes are upserts on their natural key, so re-running a DAG interval leaves one row;
- every value is a bound parameter; identifiers from user data (feature keys) are quoted with
  ``psycopg.sql`` where they reach SQL text.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..core.types import DEFAULT_MODELS
from .ab_tests import ABTestsMixin
from .alerts import AlertsMixin, RetrainRequestsMixin, alert_key
from .baselines import BaselinesMixin
from .day_statistics import DayStatisticsMixin
from .dialects import Dialect, UsesDialect, create_engine, dialect_for
from .features import FeatureRegistryMixin
from .inbox import InboxPull, OutcomeInboxMixin
from .ingest import WriteMixin
from .models import ModelsMixin, model_row
from .outcomes import OutcomesMixin
from .predictions import PredictionsMixin
from .profiles import DayProfilesMixin
from .registry import RegistryMixin
from .results import ResultsMixin
from .retention import RETENTION_DEFAULTS, RetentionMixin, retention_policy
from .rows import ConflictError, IngestReport, RowError
from .tables import ALL_VERSIONS, DEFAULT_VERSION, MAX_FEATURES, MIGRATIONS, VERSION_TABLE, models, predictions
from .urls import checked_url
from .versions import ServedVersionsMixin
from .windows import WindowsMixin

__all__ = ["ALL_VERSIONS", "DEFAULT_VERSION", "MAX_FEATURES", "MIGRATIONS", "RETENTION_DEFAULTS", "VERSION_TABLE",
           "ConflictError", "Dialect", "FeedbackStore", "InboxPull", "IngestReport", "RowError", "alert_key",
           "retention_policy"]


class FeedbackStore(UsesDialect, ModelsMixin, FeatureRegistryMixin, ServedVersionsMixin, WriteMixin, PredictionsMixin,
                    OutcomesMixin, OutcomeInboxMixin, WindowsMixin, ResultsMixin, AlertsMixin, RetrainRequestsMixin,
                    RegistryMixin, ABTestsMixin, RetentionMixin, BaselinesMixin, DayStatisticsMixin, DayProfilesMixin):
    """The store API, usable from serving code (no Airflow needed) and from the operators."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.dialect = dialect_for(engine)
        self._registry_cache: dict[str, dict[str, tuple[str, int]]] = {}  # append-only, so safe to cache
        self._known_models: set[str] = set()
        self._multiclass_models: set[str] = set()  # their rows need class probabilities
        self._registered_versions: dict[str, frozenset[str]] = {}  # model -> its registry's versions (versions.py)
        self._unregistered_seen: set[tuple[str, str]] = set()  # (model, version) accepted without a registry
        # Built once: the statement (and its compiled form) is reused by every single registration.
        self._insert_prediction = self.dialect.insert(predictions).on_conflict_do_nothing().returning(
            predictions.c.prediction_id)

    @classmethod
    def from_url(cls, url: str | sa.URL, **engine_options: Any) -> FeedbackStore:
        """``postgresql://user@host/db`` (psycopg 3 is used) or ``sqlite:////abs/path.db``; any
        other URL is a ``ValueError`` naming ``url`` (PostgreSQL or SQLite only)."""
        return cls(create_engine(checked_url(url), **engine_options))

    def ensure_schema(self, revision: str = "head") -> str:
        """Apply pending migrations up to ``revision`` (idempotent, safe to run concurrently);
        seed the default models. Returns the schema revision."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            self.dialect.lock(conn, "self_learning.migrations")  # one migrator at a time across workers
            config.attributes.update(connection=conn, version_table=VERSION_TABLE)
            command.upgrade(config, revision)
            for spec in DEFAULT_MODELS:
                conn.execute(self.dialect.insert(models).values(**model_row(spec)).on_conflict_do_nothing())
            return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
