"""Every run setting of the package's DAGs, written once: default, type, bounds, title and description.

A setting is declared once, as a field of the settings dataclass it belongs to (``RunSettings`` for
the daily and weekly runs, ``RetrainSettings`` for a retrain) or, for a param that the run resolves
into something else (``window_end``, ``request_id``, the A/B test's params), as a ``Setting``
constant. Both the DAG's trigger form (``daily_params()``, ``weekly_params()``,
``retrain_params()``: Airflow ``Param`` objects) and the validation of a run's params
(``Setting.check``, called by the dataclasses) are generated from that one declaration, so a bound
or a default can no longer differ between the form and the task that reads it.

The DAG files import this module at parse time: it imports the standard library and the core's
numpy-free ``types`` only, and Airflow's ``Param`` when a form is built. Errors are
``ValueError`` naming ``params.<name>``; the operators turn them into ``InvalidParams`` (fail at once, no retries).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .core.baselines import DEFAULT_BASELINE_DAYS, ON_PROMOTION
from .core.types import ALERT_SEVERITY_NAMES as SEVERITIES  # weakest first, without "none"
from .core.types import RANDOMISATION_UNITS as AB_UNITS
from .core.types import RETRAIN_DEFAULTS, ModelType

_JSON_TYPES = {"integer": "an integer", "number": "a number", "string": "a string", "array": "a list"}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One run setting. ``kind`` is its JSON schema type; ``minimum`` / ``maximum`` its bounds
    (both exclusive when ``exclusive``); ``nullable`` lets it be empty (``None``: "never" for a
    limit); ``choices`` makes it a dropdown; ``form`` holds schema keywords that only shape the
    form (``format``, ``examples``, ``items``). ``per_model`` marks a run setting a model may
    override with its registered ``thresholds``."""

    name: str
    default: Any
    kind: str
    title: str
    description: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive: bool = False
    nullable: bool = False
    choices: tuple[str, ...] | None = None
    required: bool = False
    per_model: bool = False
    form: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in _JSON_TYPES:
            raise ValueError(f"kind: one of {', '.join(_JSON_TYPES)}, got {self.kind!r}")
        if self.default is not None or not self.nullable:
            self.check(self.default)  # a default outside its own bounds is a bug in the declaration

    def but(self, **changes) -> Setting:
        """This setting as another DAG shows it (its own title, description or bounds)."""
        return dataclasses.replace(self, **changes)

    def check(self, value: Any) -> Any:
        """``value`` if it is valid for this setting, else ``ValueError`` naming ``params.<name>``."""
        if value is None and self.nullable:
            return value
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"params.{self.name}: must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        if not self._has_kind(value):
            raise ValueError(f"params.{self.name}: must be {self._expected()}, got {value!r}")
        if self.kind in ("integer", "number") and not self._in_bounds(value):
            raise ValueError(f"params.{self.name}: must be {self._expected()}, got {value!r}")
        if self.required and not value:
            raise ValueError(f"params.{self.name}: required, got {value!r}")
        return value

    def param(self):
        """The Airflow ``Param`` of the trigger form (Airflow imported here, not at parse of this module)."""
        from airflow.sdk import Param

        schema: dict[str, Any] = {"type": ["null", self.kind] if self.nullable else self.kind}
        if self.choices is not None:
            schema = {"enum": list(self.choices)}
        bound_keys = ("exclusiveMinimum", "exclusiveMaximum") if self.exclusive else ("minimum", "maximum")
        for key, bound in zip(bound_keys, (self.minimum, self.maximum), strict=True):
            if bound is not None:
                schema[key] = bound
        if self.required and self.kind == "string":
            schema["minLength"] = 1
        schema.update(self.form)
        if self.description is not None:
            schema["description"] = self.description
        default = list(self.default) if isinstance(self.default, tuple) else self.default
        return Param(default, title=self.title, **schema)

    def _has_kind(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind == "integer":
            return isinstance(value, int)
        if self.kind == "number":
            return isinstance(value, (int, float))
        if self.kind == "string":
            return isinstance(value, str)
        return isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)

    def _in_bounds(self, value: float) -> bool:
        low, high = self.minimum, self.maximum
        if self.exclusive:
            return (low is None or value > low) and (high is None or value < high)
        return (low is None or value >= low) and (high is None or value <= high)

    def _expected(self) -> str:
        what = _JSON_TYPES[self.kind]
        low, high = self.minimum, self.maximum
        if self.kind == "array":
            return "a list of names"
        if low is None and high is None:
            return what
        if high is None:
            return f"{what} {'>' if self.exclusive else '>='} {low:g}"
        if low is None:
            return f"{what} {'<' if self.exclusive else '<='} {high:g}"
        if self.kind == "integer":
            return f"{what} in {low:g}..{high:g}"
        return f"{what} in {'(' if self.exclusive else '['}{low:g}, {high:g}{')' if self.exclusive else ']'}"


def setting(default: Any, kind: str, title: str, description: str | None = None, **bounds) -> Any:
    """A dataclass field that is a run setting: its default and, as metadata, its ``Setting``
    (named after the field by ``settings_of``)."""
    spec = dict(default=default, kind=kind, title=title, description=description, **bounds)
    factory = (lambda: default) if isinstance(default, (list, dict)) else None
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"setting": spec})
    return dataclasses.field(default=default, metadata={"setting": spec})


def settings_of(cls) -> dict[str, Setting]:
    """The ``Setting`` of every setting field of a settings dataclass, in field order."""
    return {f.name: Setting(name=f.name, **f.metadata["setting"]) for f in dataclasses.fields(cls)
            if "setting" in f.metadata}


def check_fields(instance) -> None:
    """Validate every setting field of a settings dataclass instance (its ``__post_init__``)."""
    for name, spec in settings_of(type(instance)).items():
        spec.check(getattr(instance, name))


# -- params the run resolves into something else ------------------------------------------------------

WINDOW_END = Setting(
    "window_end", None, "string", "Window end (manual runs)", nullable=True, form={"format": "date-time"},
    description="Analyse the window ending at this UTC time instead of the run's data interval end, "
                "e.g. 2026-11-01T00:00:00+00:00.")
REQUEST_ID = Setting("request_id", None, "string", "Retrain request id", nullable=True,
                     description="Set by the daily run; empty for a manual run.")
# The A/B test of an accepted candidate: each param is the ``ABTestConfig`` field after ``ab_``.
AB_SETTINGS = (
    Setting("ab_traffic_split", 0.5, "number", "A/B: challenger share", minimum=0, maximum=1, exclusive=True,
            description="Share of units served by the challenger."),
    Setting("ab_unit", "prediction", "string", "A/B: randomisation unit", choices=AB_UNITS,
            description="What is assigned to an arm; campaign / account use the stored unit_id."),
    Setting("ab_min_days", 7, "number", "A/B: minimum days", minimum=0,
            description="No decision before this many days (weekday effects)."),
    Setting("ab_max_days", 90, "number", "A/B: maximum days", minimum=0,
            description="Hard maximum: without a winner by then, keep the champion (inconclusive). Normally a test "
                        "ends at its planned size first."),
    Setting("ab_mde", 0.05, "number", "A/B: minimum detectable effect", minimum=0, maximum=1, exclusive=True,
            description="The relative improvement of the primary metric the test is planned to find (0.05: 5 % lower "
                        "loss); sets the planned size, n* and the expected duration from recent traffic."),
    Setting("ab_power", 0.8, "number", "A/B: power", minimum=0, maximum=1, exclusive=True,
            description="Probability of finding a challenger better by the minimum detectable effect."),
    Setting("ab_primary_metric", None, "string", "A/B: primary metric", nullable=True,
            description="What decides: mae or squared_error (regressors), log_loss, accuracy or roc_auc "
                        "(classifiers), or business_value (any model; the outcomes' business_value, higher is "
                        "better); empty = the model's setting ab_primary_metric, else its task's loss."),
    Setting("ab_guardrails", None, "array", "A/B: guardrails", nullable=True, form={"items": {"type": "string"}},
            description="Metrics the challenger must not make worse, each 'metric' or 'metric:margin' (relative, "
                        "default 0.02; calibration_error's relative to the outcome rate, default 0.10), e.g. "
                        "accuracy:0.01; null = the model's setting ab_guardrails, else accuracy, roc_auc and "
                        "calibration_error for classifiers, mae for regressors; an empty list = none."),
    Setting("ab_min_outcomes_per_arm", 150, "integer", "A/B: minimum outcomes per arm", minimum=2),
    Setting("ab_margin", 0.0, "number", "A/B: practical margin", minimum=0, maximum=1,
            description="Promote only if the challenger's loss is lower by at least this share of the champion's, "
                        "with the always-valid confidence."),
    Setting("ab_alpha", 0.05, "number", "A/B: α", minimum=0, maximum=0.5, exclusive=True,
            description="Error rate of the always-valid confidence sequence."),
)
AB_PARAMS = {spec.name: spec.name.removeprefix("ab_") for spec in AB_SETTINGS}

# The default models, offered as examples in the retrain form (any registered name works).
DEFAULT_MODELS = tuple(model.value for model in ModelType)

# -- the DAGs' start date ----------------------------------------------------------------------------

# The DAGs' start_date. It was 2026-01-01, so a run with an earlier logical date (a backfill over
# last year's data) did nothing (issue 15). It is now the earliest time the store accepts
# (``store.tables.PLAUSIBLE_TIMESTAMPS``: served_at before 2000 is rejected as an input bug), so any
# history the store can hold can be replayed; with ``catchup=False`` the scheduler still creates
# only the latest interval, never 26 years of runs. ``SELF_LEARNING_START_DATE`` (an ISO date, read
# when the DAG files are parsed) sets a later one.
START_DATE_VARIABLE = "SELF_LEARNING_START_DATE"
PLAUSIBLE_START = datetime(2000, 1, 1, tzinfo=UTC)


def dag_start_date(environ: Mapping[str, str] | None = None) -> datetime:
    """The DAGs' ``start_date``: ``SELF_LEARNING_START_DATE`` (naive = UTC) or 2000-01-01 UTC."""
    text = (os.environ if environ is None else environ).get(START_DATE_VARIABLE, "").strip()
    if not text:
        return PLAUSIBLE_START
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{START_DATE_VARIABLE}: not an ISO 8601 date: {text!r}") from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value < PLAUSIBLE_START:
        raise ValueError(f"{START_DATE_VARIABLE}: {text!r} is before 2000-01-01, the earliest served_at the store "
                         "accepts")
    return value


# -- the daily and weekly runs ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The validated params of a daily or weekly run, with the windows they define."""

    window_end: datetime
    interval_start: datetime
    models: tuple[str, ...] = setting((), "array", "Models", "Model names to analyse; empty = every active model.",
                                      form={"items": {"type": "string"}})
    current_window_days: int = setting(7, "integer", "Current window (days)",
                                       "Days ending at the interval end that are analysed.", minimum=1, maximum=366)
    baseline_days: int = setting(
        DEFAULT_BASELINE_DAYS, "integer", "Default baseline (days)",
        "A model without a set baseline is compared against its first this many days of served data, pinned once "
        "complete.", minimum=7, maximum=3660, per_model=True)
    baseline_start: str | None = setting(
        None, "string", "Pin the baseline: start", nullable=True, form={"format": "date-time"},
        description="With 'Pin the baseline: end', a manual run first pins the baseline of the analysed models to "
                    "these UTC times, e.g. 2026-01-01T00:00:00+00:00; empty = keep the stored baseline.")
    baseline_end: str | None = setting(
        None, "string", "Pin the baseline: end", nullable=True, form={"format": "date-time"},
        description="End (exclusive) of the pinned baseline; it must end before the analysed window starts.")
    baseline_on_promotion: str = setting(
        "move", "string", "Baseline on promotion",
        "move: a promoted challenger's training window becomes the baseline; keep: the pinned baseline stays.",
        choices=ON_PROMOTION)
    false_alarm_days: int = setting(
        365, "integer", "Days between false alarms",
        "Expected days between false alarms per model (all checks together); higher = fewer false alarms, "
        "slower detection.", minimum=30, maximum=36_500, per_model=True)
    lookback_days: int = setting(
        28, "integer", "Monitor history (days)",
        "Days of day-level statistics the sequential monitor (CUSUM) accumulates.", minimum=7, maximum=90)
    alpha: float = setting(
        0.05, "number", "Significance level",
        "False discovery rate of the drift checks (Benjamini-Hochberg) and α of the other tests.",
        minimum=0, maximum=0.5, exclusive=True, per_model=True)
    min_label_coverage: float = setting(
        0.8, "number", "Minimum label coverage", "Below this share of labelled predictions, metrics are provisional.",
        minimum=0, maximum=1, per_model=True)
    alert_cooldown_days: float = setting(
        3, "number", "Alert cooldown (days)",
        "The same cause does not alert again at the same or lower severity within this many days.",
        minimum=0, maximum=365, per_model=True)
    feature_drift_severity: str = setting(
        RETRAIN_DEFAULTS["feature_drift_severity"], "string", "Retrain on feature drift from",
        "Feature drift at or above this severity triggers a retrain.", choices=SEVERITIES, per_model=True)
    concept_drift_severity: str = setting(
        RETRAIN_DEFAULTS["concept_drift_severity"], "string", "Retrain on concept drift from",
        "Concept drift at or above this severity triggers a retrain.", choices=SEVERITIES, per_model=True)
    performance_degradation_severity: str = setting(
        RETRAIN_DEFAULTS["performance_degradation_severity"], "string", "Retrain on performance degradation from",
        "A metric significantly and practically worse than on the baseline (MAE, RMSE, MAPE; accuracy, ROC AUC, "
        "log loss, F1), at or above this severity, triggers a retrain.", choices=SEVERITIES, per_model=True)
    max_mape: float | None = setting(
        RETRAIN_DEFAULTS["max_mape"], "number", "Retrain above MAPE (%)",
        "Regressors: retrain when MAPE exceeds this; empty = never.",
        minimum=0, maximum=1e6, nullable=True, per_model=True)
    max_log_loss: float | None = setting(
        RETRAIN_DEFAULTS["max_log_loss"], "number", "Retrain above log loss",
        "Classifiers: retrain when log loss exceeds this; empty = never.",
        minimum=0, maximum=1e3, nullable=True, per_model=True)
    min_roc_auc: float | None = setting(
        RETRAIN_DEFAULTS["min_roc_auc"], "number", "Retrain below ROC AUC",
        "Classifiers: retrain when ROC AUC falls below this; empty = never.",
        minimum=0, maximum=1, nullable=True, per_model=True)
    min_labelled_outcomes: int = setting(
        RETRAIN_DEFAULTS["min_labelled_outcomes"], "integer", "Minimum labelled outcomes",
        "Never retrain on fewer labelled outcomes in the window.",
        minimum=1, per_model=True)
    retrain_cooldown_days: float = setting(
        7, "number", "Retrain cooldown (days)",
        "No new retrain request while a request of the last this many days (not failed) holds every cause at the "
        "same or a higher severity; a new cause or a higher severity always files one.", minimum=0, maximum=365,
        per_model=True)
    notification_cooldown_days: float = setting(
        7, "number", "Notification cooldown (days)",
        "At most one notification per model and cause in this many days (channels: Variable "
        "self_learning_notification_channels).", minimum=0, maximum=365)

    def __post_init__(self):
        for name in ("baseline_start", "baseline_end"):
            if getattr(self, name) == "":  # an emptied form field
                object.__setattr__(self, name, None)
        check_fields(self)
        object.__setattr__(self, "models", tuple(self.models))
        self.baseline_window  # noqa: B018 - both or neither, parsable, start before end

    @property
    def baseline_window(self) -> tuple[datetime, datetime] | None:
        """The baseline a manual run pins (``baseline_start`` / ``baseline_end``, UTC; a naive time
        is UTC), or None when neither is set. ``ValueError`` naming the param otherwise."""
        if self.baseline_start is None and self.baseline_end is None:
            return None
        if self.baseline_start is None or self.baseline_end is None:
            missing = "baseline_start" if self.baseline_start is None else "baseline_end"
            raise ValueError(f"params.{missing}: required when the other baseline date is set (set both or neither)")
        start, end = (_utc_time(name, getattr(self, name)) for name in ("baseline_start", "baseline_end"))
        if end <= start:
            raise ValueError(f"params.baseline_end: {end.isoformat()} is not after baseline_start {start.isoformat()}")
        return start, end

    @property
    def current_start(self) -> datetime:
        return self.window_end - timedelta(days=self.current_window_days)

    def for_model(self, thresholds: Mapping[str, Any]) -> RunSettings:
        """These settings with a model's registered threshold overrides applied."""
        known = MODEL_OVERRIDABLE + MODEL_RETRAIN_SETTINGS + MODEL_STORE_SETTINGS + MODEL_AB_SETTINGS
        unknown = sorted(set(thresholds) - set(known))
        if unknown:
            raise ValueError(f"thresholds: unknown keys {unknown}; a model may set {', '.join(known)}")
        return dataclasses.replace(self, **{k: v for k, v in thresholds.items() if k in MODEL_OVERRIDABLE})

    def retrain_thresholds(self):
        """The retrain decision's thresholds of these settings (the core's ``RetrainThresholds``)."""
        from .core.retraining import RetrainThresholds

        return RetrainThresholds(
            feature_drift_severity=self.feature_drift_severity, concept_drift_severity=self.concept_drift_severity,
            performance_degradation_severity=self.performance_degradation_severity, max_mape=self.max_mape,
            max_log_loss=self.max_log_loss, min_roc_auc=self.min_roc_auc,
            min_labelled_outcomes=self.min_labelled_outcomes)


def _utc_time(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"params.{name}: not an ISO 8601 time: {text!r}") from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not PLAUSIBLE_START <= value <= datetime(2200, 1, 1, tzinfo=UTC):
        raise ValueError(f"params.{name}: {text!r} is outside the plausible range 2000..2200")
    return value


RUN_SETTINGS = settings_of(RunSettings)
# Run settings a model may override through its registered ``thresholds``.
MODEL_OVERRIDABLE = tuple(name for name, spec in RUN_SETTINGS.items() if spec.per_model)
# How a model is retrained: a trainer factory by dotted path (and the extra types its artifacts may
# hold, see lifecycle.load_artifact), or its own training DAG to trigger.
MODEL_RETRAIN_SETTINGS = ("trainer", "trainer_dag_id", "trusted_types")
# Read by the store itself: the cap on a model's registered feature keys.
MODEL_STORE_SETTINGS = ("max_features",)
# What a model's A/B tests judge it on, unless the retrain form says otherwise.
MODEL_AB_SETTINGS = ("ab_primary_metric", "ab_guardrails")


# -- the retrain run ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RetrainSettings:
    """The validated params of a retrain run. ``ab_test`` holds the A/B params that were given, by
    ``ABTestConfig`` field (the others take that class's defaults)."""

    model: str = setting("ctr_predictor", "string", "Model",
                         "A registered model (the list shows the default ones; any registered name works).",
                         required=True, form={"examples": list(DEFAULT_MODELS)})
    window_end: datetime | None = None
    request_id: str = ""
    reason: str = setting("manual retrain", "string", "Reason", "Why this retrain runs; stored with the request.")
    training_window_days: int = setting(
        30, "integer", "Training window (days)", "Labelled outcomes of this many days before the window end.",
        minimum=1, maximum=3660)
    holdout_share: float = setting(
        0.2, "number", "Holdout share", "The latest share of the window that candidate and champion are scored on.",
        minimum=0, maximum=1, exclusive=True)
    margin: float = setting(
        0.02, "number", "Margin to beat the champion",
        "Relative improvement of the primary loss (MAE or log loss) the candidate needs to be tested against the "
        "champion.", minimum=0, maximum=1)
    ab_test: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.window_end is None:
            raise ValueError("params.window_end: required")
        check_fields(self)
        by_field = {field: name for name, field in AB_PARAMS.items()}
        specs = {spec.name: spec for spec in AB_SETTINGS}
        for field, value in self.ab_test.items():
            if field not in by_field:
                raise ValueError(f"params.ab_{field}: not an A/B test setting")
            specs[by_field[field]].check(value)
        from .core.ab import ABTestConfig  # the cross-field rules (min_days <= max_days, margin < 1)

        try:
            ABTestConfig(**self.ab_test)
        except ValueError as error:
            raise ValueError(f"params.ab_{error}") from None


RETRAIN_SETTINGS = settings_of(RetrainSettings)


# -- the DAGs' trigger forms ---------------------------------------------------------------------------


def form(*settings: Setting) -> dict[str, Any]:
    """A DAG's ``params``: one ``Param`` per setting, in the order given (the form's order)."""
    return {spec.name: spec.param() for spec in settings}


def daily_params() -> dict[str, Any]:
    """The daily DAG's form: every run setting, then the manual window end."""
    return form(*RUN_SETTINGS.values(), WINDOW_END)


def weekly_params() -> dict[str, Any]:
    """The weekly DAG's form: the models, the fixed 7-day period, the label coverage, the week end."""
    return form(
        RUN_SETTINGS["models"].but(description="Model names to report on; empty = every active model."),
        RUN_SETTINGS["current_window_days"].but(title="Period (days)", minimum=7, maximum=7,
                                                description="The weekly period; fixed at 7 days."),
        RUN_SETTINGS["min_label_coverage"],
        WINDOW_END.but(title="Week end (manual runs)",
                       description="Report on the week ending at this UTC time instead of the run's data interval "
                                   "end, e.g. 2026-11-02T00:00:00+00:00."))


def retrain_params() -> dict[str, Any]:
    """The retrain DAG's form: the model and request, the training window and the A/B test."""
    specs = RETRAIN_SETTINGS
    return form(
        specs["model"], specs["training_window_days"], specs["reason"], REQUEST_ID,
        WINDOW_END.but(title="Window end",
                       description="Train on the window ending here (UTC); empty = the last complete day."),
        specs["holdout_share"], specs["margin"], *AB_SETTINGS)
