"""The registry of drift checks: adding a statistic is one function plus one registration.

A check reads one feature's prepared sample (``FeatureSample``: the values of both windows,
their missing counts and the kind's comparison, computed once per feature) and returns a
``CheckOutcome`` (p-value, named effect, the ladder that rates the effect), or ``None`` when it
does not apply (no unseen values, nothing missing). Every returned outcome of a report takes part
in one Benjamini-Hochberg correction, so a new check is corrected with the others for free.

To add one, as Evidently's ``register_stattest`` or NannyML's method factory do::

    @register_check("anderson_darling", kinds=("numeric",))
    def anderson_darling(sample: FeatureSample) -> CheckOutcome | None:
        result = scipy.stats.anderson_ksamp([sample.reference, sample.current])
        return CheckOutcome(result.pvalue, "statistic", ..., sample.thresholds.wasserstein)

Checks run in registration order, which is the order of ``details["checks"]`` in the report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy import stats

from ..types import FEATURE_KINDS, Severity, SeverityLadder
from ..validation import check_alpha
from .comparisons import CategoricalComparison, NumericComparison, _compare_sorted, compare_categorical

# Effect ladders (low / medium / high / critical); ``low`` is the practical threshold. Why these
# numbers: see "Effect thresholds" in ``core.drift``'s docstring.
WASSERSTEIN_LADDER = SeverityLadder(low=0.05, medium=0.2, high=0.3, critical=0.5)  # W / ref std beyond its null
PSI_LADDER = SeverityLadder(low=0.1, medium=0.2, high=0.3, critical=0.5)  # PSI minus its null mean
JS_LADDER = SeverityLadder(low=0.1, medium=0.2, high=0.3, critical=0.5)  # JS distance beyond its null
EFFECT_LADDER = JS_LADDER  # the old single ladder (max(PSI, W/std) and JS), kept for code that imports it
RATE_LADDER = SeverityLadder(low=0.05, medium=0.1, high=0.2, critical=0.4)
# Relative increase of the loss (MAE or log loss), in percent.
CONCEPT_LADDER = SeverityLadder(low=10.0, medium=20.0, high=35.0, critical=50.0)


@dataclasses.dataclass(frozen=True)
class DriftThresholds:
    """Decision parameters of a drift report; the defaults are documented in ``core.drift``."""

    alpha: float = 0.05
    min_samples: int = 10
    psi_bins: int = 10
    min_expected_count: float = 5.0
    wasserstein: SeverityLadder = WASSERSTEIN_LADDER
    psi: SeverityLadder = PSI_LADDER
    js: SeverityLadder = JS_LADDER
    rate: SeverityLadder = RATE_LADDER

    def __post_init__(self):
        check_alpha(self.alpha)
        if self.min_samples < 2:
            raise ValueError(f"min_samples: must be >= 2, got {self.min_samples}")
        if self.psi_bins < 2:
            raise ValueError(f"psi_bins: must be >= 2, got {self.psi_bins}")


@dataclasses.dataclass(frozen=True)
class FeatureSample:
    """One feature of both windows, as the checks see it. ``reference`` / ``current`` hold the
    present values (numeric: sorted and finite; categorical: labels as text); ``missing_*``
    count the absent ones (NaN, None, +-inf); ``comparison`` is the kind's two-sample comparison."""

    name: str
    kind: str
    reference: np.ndarray
    current: np.ndarray
    missing_reference: int
    missing_current: int
    comparison: NumericComparison | CategoricalComparison
    thresholds: DriftThresholds

    @property
    def n_reference(self) -> int:
        return int(self.reference.size)

    @property
    def n_current(self) -> int:
        return int(self.current.size)


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """An uncorrected hypothesis test: its p-value and the effect that rates it on ``ladder``;
    ``also`` holds more ``(name, effect, ladder)`` of the same test (the numeric distribution's
    PSI beside its Wasserstein distance), and the worst rating of them all is the severity."""

    p_value: float
    effect_name: str
    effect: float | None
    ladder: SeverityLadder
    also: tuple[tuple[str, float | None, SeverityLadder], ...] = ()

    @property
    def effects(self) -> dict[str, float | None]:
        return {self.effect_name: self.effect, **{name: effect for name, effect, _ in self.also}}

    def severity(self) -> Severity:
        """The effects' worst rating (what a significant test is reported at)."""
        return Severity.worst(ladder.rate(effect) for _, effect, ladder in
                              ((self.effect_name, self.effect, self.ladder), *self.also))


DriftCheck = Callable[[FeatureSample], CheckOutcome | None]
_CHECKS: dict[str, dict[str, DriftCheck]] = {kind: {} for kind in FEATURE_KINDS}


def register_check(name: str, *, kinds: tuple[str, ...] = FEATURE_KINDS) -> Callable[[DriftCheck], DriftCheck]:
    """Decorator: run ``check`` as ``name`` on every feature of the given kinds."""
    unknown = [k for k in kinds if k not in _CHECKS]
    if unknown or not kinds:
        raise ValueError(f"kinds: must be some of {list(FEATURE_KINDS)}, got {list(kinds)}")

    def register(check: DriftCheck) -> DriftCheck:
        for kind in kinds:
            if name in _CHECKS[kind]:
                raise ValueError(f"name: drift check {name!r} is already registered for {kind} features")
            _CHECKS[kind][name] = check
        return check

    return register


def checks_for(kind: str) -> dict[str, DriftCheck]:
    """The registered checks of a feature kind, in registration order."""
    return dict(_CHECKS[kind])


def compare_feature(kind: str, reference: np.ndarray, current: np.ndarray, thresholds: DriftThresholds
                    ) -> NumericComparison | CategoricalComparison:
    """The kind's two-sample comparison, computed once per feature and shared by its checks."""
    if kind == "numeric":
        return _compare_sorted(reference, current, thresholds.psi_bins)
    return compare_categorical(reference, current, min_expected_count=thresholds.min_expected_count)


def numeric_outcome(comparison: NumericComparison, thresholds: DriftThresholds) -> CheckOutcome:
    """KS p-value; effects Wasserstein / reference std beyond its null mean (``thresholds.wasserstein``)
    and PSI beyond its null mean (``thresholds.psi``): the worse rating wins. Shared by prediction drift."""
    return CheckOutcome(comparison.p_value, "wasserstein_excess", comparison.wasserstein_excess,
                        thresholds.wasserstein,
                        also=(("psi_excess", comparison.psi_excess, thresholds.psi),))


@register_check("distribution", kinds=("numeric",))
def numeric_distribution(sample: FeatureSample) -> CheckOutcome:
    """KS p-value; effects Wasserstein / reference std and PSI, each beyond its null mean."""
    return numeric_outcome(sample.comparison, sample.thresholds)


@register_check("distribution", kinds=("categorical",))
def categorical_distribution(sample: FeatureSample) -> CheckOutcome:
    """Chi-squared homogeneity p-value; effect = Jensen-Shannon distance (base 2) beyond its null."""
    return CheckOutcome(sample.comparison.p_value, "js_excess", sample.comparison.js_excess, sample.thresholds.js)


@register_check("unseen_categories", kinds=("categorical",))
def unseen_categories(sample: FeatureSample) -> CheckOutcome | None:
    """Current values never seen in the reference, beyond the Good-Turing expectation."""
    comparison = sample.comparison
    if not comparison.unseen_count:
        return None
    excess = max(0.0, comparison.unseen_share - comparison.expected_unseen_share)
    return CheckOutcome(comparison.unseen_p_value, "unseen_excess_share", excess, sample.thresholds.rate)


@register_check("missing_rate")
def missing_rate(sample: FeatureSample) -> CheckOutcome | None:
    """Fisher's exact test of the missing counts; effect = absolute change of the missing rate."""
    if not (sample.missing_reference or sample.missing_current):
        return None
    p_value = stats.fisher_exact([[sample.missing_reference, sample.n_reference],
                                  [sample.missing_current, sample.n_current]]).pvalue
    return CheckOutcome(float(p_value), "missing_rate_change", _missing_rate_change(sample), sample.thresholds.rate)


def _missing_rate_change(sample: FeatureSample) -> float:
    ref_total = sample.n_reference + sample.missing_reference
    cur_total = sample.n_current + sample.missing_current
    return abs((1 - sample.n_current / cur_total) - (1 - sample.n_reference / ref_total))
