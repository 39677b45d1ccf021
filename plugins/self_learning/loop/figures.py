"""How every figure the report and the pages show is named: its title, its unit or scale, and how
a value is written (a share in %, a percentage with %, 4 significant digits). One table, read by
the report builder, the HTML pages, the incident view and ``/metrics``, so a metric is called the
same everywhere: MAPE (stored in percent) and WAPE (stored as a fraction) are both shown in %.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Figure:
    """How a figure is named wherever it is shown: its title, its unit or scale (what a reader needs
    to read the number), whether it is a 0-1 share (shown in %) or already in percent; for a
    chart, the range its axis spans (None: up to the data) and its short name (a table header)."""

    title: str
    unit: str
    share: bool = False
    percent: bool = False
    axis: tuple[float | None, float | None] = (0.0, None)
    short: str = ""

    def shown(self, value: float | None) -> str:
        """A value as a reader reads it: 4 significant digits, a share or a percentage with %."""
        if value is None:
            return "–"
        if self.share:
            return f"{value:.1%}"
        return f"{value:.1f}%" if self.percent else f"{value:.4g}"

    @property
    def label(self) -> str:
        """An axis label: the short name (else the title) with its unit or scale."""
        unit = "%" if self.share or self.percent else self.unit
        return f"{self.short or self.title} ({unit})" if unit else (self.short or self.title)

    @property
    def header(self) -> str:
        """A table header: the short name with its unit when that is short (%, target units); a
        longer scale is written under the table."""
        unit = "%" if self.share or self.percent else self.unit
        return f"{self.short or self.title} ({unit})" if unit and len(unit) <= 14 else (self.short or self.title)


# The stored metrics (and the degradation check's), named for a reader.
METRIC_FIGURES: dict[str, Figure] = {
    "mae": Figure("Mean absolute error", "target units", short="MAE"),
    "rmse": Figure("Root mean squared error", "target units", short="RMSE"),
    "r2": Figure("R² (variance explained)", "1 perfect, 0 no better than the mean", axis=(None, 1.0), short="R²"),
    "mape": Figure("Mean absolute percentage error", "%", percent=True, short="MAPE"),
    "wape": Figure("Weighted absolute percentage error", "%", share=True, short="WAPE"),
    "roc_auc": Figure("ROC AUC", "0.5 chance, 1 perfect", axis=(0.5, 1.0), short="ROC AUC"),
    "log_loss": Figure("Log loss", "nats per row", short="Log loss"),
    "accuracy": Figure("Accuracy", "%", share=True, axis=(0.0, 1.0), short="Accuracy"),
    "f1": Figure("F1 score", "0–1", axis=(0.0, 1.0), short="F1"),
}
# The retrain limits a metric chart draws: (metric, setting, the side that retrains).
METRIC_LIMITS = (("mape", "max_mape", "above"), ("log_loss", "max_log_loss", "above"),
                 ("roc_auc", "min_roc_auc", "below"))


# A multiclass window's headline figures, in the order shown (``{k}``: the window's top_k).
MULTICLASS_FIGURES: dict[str, Figure] = {
    "accuracy": Figure("Accuracy", "share of labelled rows served their actual class", share=True),
    "macro_f1": Figure("Macro F1", "unweighted mean of the classes' F1, 0–1"),
    "weighted_f1": Figure("Weighted F1", "mean of the classes' F1 weighted by their actual rows, 0–1"),
    "log_loss": Figure("Log loss", "mean −ln P(actual class) per row, in nats; lower is better"),
    "top_k_accuracy": Figure("Top-{k} accuracy", "share of rows whose actual class is among the {k} most probable",
                             share=True),
    "roc_auc": Figure("ROC AUC (one-vs-rest, macro)", "mean of the classes' one-vs-rest AUC; 0.5 chance, 1 perfect"),
    "brier_score": Figure("Brier score", "sum over classes of (p − 1[actual class])², mean per row, 0–2; "
                                         "lower is better"),
    "expected_calibration_error": Figure("Calibration error (class-wise ECE)",
                                         "mean over classes of |observed rate − mean probability| in 10 "
                                         "probability bins, 0–1"),
}
# The per-class figures of a multiclass window (``per_class_<name>`` in its result).
PER_CLASS_FIGURES: dict[str, Figure] = {
    "support": Figure("actual rows", "labelled rows whose actual class it is"),
    "precision": Figure("precision", "share of the rows served the class whose actual class it is", share=True),
    "recall": Figure("recall", "share of the class's actual rows served the class", share=True),
    "calibration_error": Figure("calibration error", "ECE of P(class) against the class occurring, 0–1"),
}
# The per-class figures every window's metrics carry (the rest are in the latest window's view).
PER_CLASS_IN_METRICS = ("support", "precision", "recall")
