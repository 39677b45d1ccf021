"""Run settings written once: the trigger form and the validation come from the same declaration."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from self_learning import settings
from self_learning.settings import AB_SETTINGS, RETRAIN_SETTINGS, RUN_SETTINGS, WINDOW_END, RunSettings, Setting

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2026, 11, 1, tzinfo=UTC)
ALL_SETTINGS = [*RUN_SETTINGS.values(), *RETRAIN_SETTINGS.values(), *AB_SETTINGS, WINDOW_END, settings.REQUEST_ID]
# Values around every bound and of every wrong type: the form and the validation must agree on each.
PROBES = (None, True, "", "x", "high", [], ["m"], "m", -1, 0, 0.5, 1, 1.5, 2, 7, 100, 365, 366, 367, 3660, 3661, 1e3,
          1e3 + 1, 1e6, 1e6 + 1, 1e9)


def _form_accepts(spec: Setting, value) -> bool:
    from airflow.sdk.definitions.param import ParamValidationError

    try:
        spec.param().resolve(value=value)
    except ParamValidationError:
        return False
    return True


def _check_accepts(spec: Setting, value) -> bool:
    try:
        spec.check(value)
    except ValueError as error:
        assert str(error).startswith(f"params.{spec.name}: "), error
        return False
    return True


@pytest.mark.parametrize("spec", ALL_SETTINGS, ids=lambda s: s.name)
def test_form_and_validation_accept_the_same_values(spec):
    disagreements = [value for value in PROBES if _form_accepts(spec, value) != _check_accepts(spec, value)
                     # JSON schema's "number" takes true/1.0 as 1 and an "integer" 1.0: the task's check is stricter
                     and not isinstance(value, bool) and not (spec.kind == "integer" and isinstance(value, float))]
    assert disagreements == [], f"{spec.name}: form and validation differ on {disagreements}"
    assert _check_accepts(spec, spec.default) and _form_accepts(spec, spec.param().value)


def test_every_form_field_has_a_title_and_every_severity_is_a_dropdown():
    for form in (settings.daily_params(), settings.weekly_params(), settings.retrain_params()):
        for name, param in form.items():
            assert param.schema.get("title"), name
    daily = settings.daily_params()
    assert daily["feature_drift_severity"].schema["enum"] == list(settings.SEVERITIES)
    assert daily["max_mape"].schema["type"] == ["null", "number"] and daily["max_log_loss"].value is None
    assert list(daily)[::len(daily) - 1] == ["models", "window_end"]
    weekly = settings.weekly_params()
    assert (weekly["current_window_days"].schema["minimum"], weekly["current_window_days"].schema["maximum"]) == (7, 7)
    assert weekly["window_end"].schema["title"] == "Week end (manual runs)"


def test_run_settings_defaults_are_the_forms_defaults():
    defaults = RunSettings(window_end=END, interval_start=END)
    for name, param in settings.daily_params().items():
        if name != "window_end":
            expected = tuple(param.value) if isinstance(param.value, list) else param.value
            assert getattr(defaults, name) == expected, name


def test_model_overridable_settings_are_marked_on_the_setting():
    assert settings.MODEL_OVERRIDABLE == ("baseline_days", "false_alarm_days", "alpha", "min_label_coverage",
                                          "alert_cooldown_days", "feature_drift_severity", "concept_drift_severity",
                                          "performance_degradation_severity", "max_mape", "max_log_loss", "min_roc_auc",
                                          "min_labelled_outcomes",
                                          "retrain_cooldown_days")


@pytest.mark.parametrize(("changes", "field"), [
    ({"kind": "float"}, "kind"), ({"default": 0}, "params.x"), ({"default": "z", "choices": ("a",)}, "params.x")])
def test_a_bad_declaration_fails_at_import(changes, field):
    with pytest.raises(ValueError, match=rf"^{field}"):
        Setting(**{"name": "x", "default": 1, "kind": "integer", "title": "X", "minimum": 1, **changes})


def test_retrain_settings_check_the_ab_params_one_by_one_then_together():
    base = {"model": "m", "window_end": END, "request_id": "r"}
    with pytest.raises(ValueError, match=r"^params\.ab_min_outcomes_per_arm: must be an integer >= 2"):
        settings.RetrainSettings(**base, ab_test={"min_outcomes_per_arm": 1})
    with pytest.raises(ValueError, match=r"^params\.ab_min_days, max_days"):
        settings.RetrainSettings(**base, ab_test={"min_days": 10, "max_days": 5})
    with pytest.raises(ValueError, match=r"^params\.ab_seed: not an A/B test setting"):
        settings.RetrainSettings(**base, ab_test={"seed": "s"})
    # the plan's and the metrics' params (issue 16): named when bad, the model's settings accepted
    with pytest.raises(ValueError, match=r"^params\.ab_mde: must be a number in \(0, 1\)"):
        settings.RetrainSettings(**base, ab_test={"mde": 0})
    with pytest.raises(ValueError, match=r"^params\.ab_primary_metric: one of mae, squared_error"):
        settings.RetrainSettings(**base, ab_test={"primary_metric": "f1"})
    with pytest.raises(ValueError, match=r"^params\.ab_guardrails: 'calibration' is not a metric"):
        settings.RetrainSettings(**base, ab_test={"guardrails": ["calibration"]})
    chosen = settings.RetrainSettings(**base, ab_test={"primary_metric": "roc_auc", "guardrails": ["accuracy:0.01"]})
    assert chosen.ab_test["guardrails"] == ["accuracy:0.01"]
    assert RunSettings(window_end=END, interval_start=END).for_model(
        {"ab_primary_metric": "accuracy", "ab_guardrails": []}).alpha == 0.05


def test_the_settings_module_imports_no_airflow_and_nothing_heavy():
    code = ("import sys, json; import self_learning.settings as s; s.RunSettings; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'airflow', 'numpy', 'pandas', 'scipy', 'sklearn', 'sqlalchemy'})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            cwd=ROOT / "plugins", timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_baseline_settings_defaults_and_per_model_override():
    defaults = RunSettings(window_end=END, interval_start=END)
    assert (defaults.baseline_days, defaults.baseline_on_promotion, defaults.false_alarm_days,
            defaults.lookback_days) == (30, "move", 365, 28)
    assert defaults.baseline_window is None
    assert defaults.for_model({"baseline_days": 60, "false_alarm_days": 730}).baseline_days == 60
    with pytest.raises(ValueError, match=r"^params\.baseline_days: must be an integer in 7\.\.3660"):
        defaults.for_model({"baseline_days": 3})
    with pytest.raises(ValueError, match=r"^params\.false_alarm_days: must be an integer in 30\.\.36500"):
        RunSettings(window_end=END, interval_start=END, false_alarm_days=10)
    with pytest.raises(ValueError, match=r"^params\.baseline_on_promotion: must be one of move, keep"):
        RunSettings(window_end=END, interval_start=END, baseline_on_promotion="drop")
    daily = settings.daily_params()
    assert daily["baseline_start"].schema["title"] == "Pin the baseline: start"
    assert daily["baseline_on_promotion"].schema["enum"] == ["move", "keep"]
    assert "reference_window_days" not in daily  # drift is measured against the pinned baseline


def test_a_pinned_baseline_needs_both_dates_in_order():
    def run(**params):
        return RunSettings(window_end=END, interval_start=END, **params)

    pinned = run(baseline_start="2026-01-01T00:00:00+02:00", baseline_end="2026-02-01")  # naive: UTC
    assert pinned.baseline_window == (datetime(2025, 12, 31, 22, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert run(baseline_start="", baseline_end="").baseline_window is None  # emptied form fields
    for params, match in (({"baseline_start": "2026-01-01"}, r"^params\.baseline_end: required"),
                          ({"baseline_end": "2026-01-01"}, r"^params\.baseline_start: required"),
                          ({"baseline_start": "2026-02-01", "baseline_end": "2026-01-01"},
                           r"^params\.baseline_end: 2026-01-01T00:00:00\+00:00 is not after baseline_start"),
                          ({"baseline_start": "2026-01-01", "baseline_end": "2026-01-01"}, r"^params\.baseline_end"),
                          ({"baseline_start": "January", "baseline_end": "2026-01-01"},
                           r"^params\.baseline_start: not an ISO 8601 time: 'January'"),
                          ({"baseline_start": "1999-01-01", "baseline_end": "2026-01-01"},
                           r"^params\.baseline_start: '1999-01-01' is outside the plausible range"),
                          ({"baseline_start": 20260101, "baseline_end": "2026-01-01"},
                           r"^params\.baseline_start: must be a string")):
        with pytest.raises(ValueError, match=match):
            run(**params)


def test_dag_start_date_is_early_enough_for_history_or_set_by_the_environment():
    assert settings.dag_start_date({}) == datetime(2000, 1, 1, tzinfo=UTC)
    assert settings.dag_start_date({"SELF_LEARNING_START_DATE": " "}) == datetime(2000, 1, 1, tzinfo=UTC)
    assert settings.dag_start_date({"SELF_LEARNING_START_DATE": "2024-03-01"}) == datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"^SELF_LEARNING_START_DATE: not an ISO 8601 date: 'soon'"):
        settings.dag_start_date({"SELF_LEARNING_START_DATE": "soon"})
    with pytest.raises(ValueError, match=r"^SELF_LEARNING_START_DATE: '1990-01-01' is before 2000-01-01"):
        settings.dag_start_date({"SELF_LEARNING_START_DATE": "1990-01-01"})
