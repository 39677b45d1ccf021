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
    assert settings.MODEL_OVERRIDABLE == ("alpha", "min_label_coverage", "alert_cooldown_days",
                                          "feature_drift_severity", "concept_drift_severity", "max_mape",
                                          "max_log_loss", "min_roc_auc", "min_labelled_outcomes",
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


def test_the_settings_module_imports_no_airflow_and_nothing_heavy():
    code = ("import sys, json; import self_learning.settings as s; s.RunSettings; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'airflow', 'numpy', 'pandas', 'scipy', 'sklearn', 'sqlalchemy'})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            cwd=ROOT / "plugins", timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
