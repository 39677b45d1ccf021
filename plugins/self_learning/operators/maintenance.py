"""Keeping the store bounded: the weekly clean-up under the retention policy."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .common import FeedbackStoreOperator, InvalidParams, run_settings

RETENTION_VARIABLE = "self_learning_retention_days"


class RetentionOperator(FeedbackStoreOperator):
    """Delete what the retention policy lets go, relative to the run's window end (never the clock).

    The policy is the store's defaults (``self_learning.store.RETENTION_DEFAULTS``) with
    ``keep_days`` applied, else the JSON Variable ``self_learning_retention_days``
    (``{"table": days or null}``, e.g. ``{"predictions": 400, "alerts": null}``). A bad policy
    fails at once, naming the table. Returns the rows deleted per table.
    """

    template_fields: Sequence[str] = ()

    def __init__(self, *, keep_days: Mapping[str, int | None] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.keep_days = keep_days

    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk import Variable

        from ..store import retention_policy

        settings = run_settings(context)
        keep_days = self.keep_days
        if keep_days is None:
            # read as text and parsed here: the secrets backends swallow a JSON error and fall back
            # to the default, which would quietly apply the default policy instead of the user's
            raw = Variable.get(RETENTION_VARIABLE, default=None)
            try:
                keep_days = None if raw is None else json.loads(raw)
            except ValueError as error:  # JSONDecodeError
                raise InvalidParams(f"keep_days: Variable {RETENTION_VARIABLE} is not JSON ({error})") from error
        try:
            policy = retention_policy(keep_days)
        except ValueError as error:
            raise InvalidParams(f"{error} (Variable {RETENTION_VARIABLE})") from error
        deleted = self.store().apply_retention(now=settings.window_end, keep_days=policy)
        self.log.info("retention up to %s: deleted %s; kept for ever: %s", settings.window_end.isoformat(),
                      ", ".join(f"{count} {table}" for table, count in deleted.items() if count) or "nothing",
                      ", ".join(table for table, days in policy.items() if days is None) or "nothing")
        return {"window_end": settings.window_end.isoformat(), "deleted": deleted,
                "policy": {table: days for table, days in policy.items()}}
