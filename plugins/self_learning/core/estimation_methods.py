"""The two estimators behind ``core.estimation``: confidence-based performance estimation (CBPE) for
classifiers and direct loss estimation (DLE) for regressors. Pure: arrays in, arrays and floats out;
``core.estimation`` reads the frames, checks them and builds the results.

CBPE (binary): the reference's scores are calibrated (``fit_calibrator``: Platt or isotonic when one
of them has a clearly lower Brier score than the served scores on a held-out half of the reference,
else the served scores as they are; the choice is refitted on all of it). A current row with
calibrated probability p counts p towards an expected positive and 1 - p towards an expected
negative, so the expected confusion matrix is TP = sum of p over predicted
positives, FP = sum of 1 - p over them, FN = sum of p over predicted negatives, TN = sum of 1 - p
over them; accuracy, precision, recall and F1 follow as ratios (of expectations). Expected ROC AUC
(``expected_roc_auc``): the share of (positive, negative) pairs ranked right, each pair (i, j)
weighted by p_i (1 - p_j), rows ranked by the served score (ties count half), a row never paired
with itself.

CBPE (multiclass): each class's probability column is calibrated one-vs-rest as above and the rows
renormalised to sum to 1; accuracy is the mean calibrated probability of the served class; each
class gets its one-vs-rest expected confusion matrix (predicted positive = served that class) and
expected AUC; precision, recall and F1 are macro averages over the classes, as sklearn's
``average="macro"``.

DLE (regression): a ``HistGradientBoostingRegressor`` with a Poisson loss (a non-negative target
and a log link: the model's mean is the conditional mean of the loss, never negative) is fitted on
the reference to each row's |error|, squared error and absolute percentage error (rows with
actual != 0) from the features and the prediction, with early stopping on a 20 % validation split so
the boosting stops before it learns the reference's noise. A current window's estimated MAE is the
mean predicted |error|, its RMSE the square root of the mean predicted squared error, its MAPE the
mean predicted percentage error. Categorical features are coded by their reference categories (the
most frequent ``MAX_CATEGORIES`` of them; the rest and unseen ones share one code).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .types import shown
from .validation import label_text

MAX_CATEGORIES = 250  # HistGradientBoosting's categorical limit is 255 bins; keep room for "other"
CALIBRATIONS = ("identity", "platt", "isotonic")
BRIER_MARGIN_SE = 2.0  # a calibrator replaces the served scores only when it is clearly better held out
_LOGIT_CLIP = 1e-6


def _logit(score: np.ndarray) -> np.ndarray:
    p = np.clip(score, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.log(p / (1 - p))


class Calibrator:
    """A fitted map from served score to calibrated P(y = 1): ``method`` one of ``CALIBRATIONS``."""

    def __init__(self, method: str, model=None, constant: float | None = None):
        self.method, self.model, self.constant = method, model, constant

    def __call__(self, score: np.ndarray) -> np.ndarray:
        if score.size == 0:
            return np.zeros(0)
        if self.constant is not None:
            return np.full(score.shape, self.constant)
        if self.method == "identity":
            return np.clip(score, 0.0, 1.0)
        if self.method == "platt":
            return self.model.predict_proba(_logit(score)[:, None])[:, 1]
        return np.clip(self.model.predict(score), 0.0, 1.0)


def _fit_one(method: str, score: np.ndarray, outcome: np.ndarray) -> Calibrator:
    if method == "identity":
        return Calibrator(method)
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        return Calibrator(method, LogisticRegression(C=1e6).fit(_logit(score)[:, None], outcome))
    from sklearn.isotonic import IsotonicRegression

    return Calibrator(method, IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, outcome))


def fit_calibrator(score: np.ndarray, outcome: np.ndarray, rng: np.random.Generator) -> tuple[Calibrator, dict]:
    """The calibration chosen on a held-out half of the reference (each candidate fitted on the other
    half), refitted on all rows; and the held-out Brier score of each candidate. The served scores
    (identity) are kept unless Platt or isotonic lowers the held-out Brier score by more than
    ``BRIER_MARGIN_SE`` standard errors of the paired difference: on calibrated scores a calibrator
    only adds its own noise (Platt won by chance on 3 of 5 calibrated synthetic references before).
    An outcome of one class only gives a constant calibrator (its rate); the caller reports what that
    leaves out."""
    if outcome.min() == outcome.max():
        return Calibrator("constant", constant=float(outcome[0])), {}
    held_out = rng.random(score.size) < 0.5
    fit, check = ~held_out, held_out
    if np.unique(outcome[fit]).size < 2 or check.sum() < 2:
        return _fit_one("isotonic", score, outcome), {}
    losses = {method: (_fit_one(method, score[fit], outcome[fit])(score[check]) - outcome[check]) ** 2
              for method in CALIBRATIONS}
    brier = {method: float(loss.mean()) for method, loss in losses.items()}
    chosen = "identity"
    for method in ("platt", "isotonic"):
        gain = losses["identity"] - losses[method]
        standard_error = gain.std(ddof=1) / np.sqrt(gain.size)
        if gain.mean() > BRIER_MARGIN_SE * standard_error and brier[method] < brier[chosen]:
            chosen = method
    return _fit_one(chosen, score, outcome), brier


def expected_roc_auc(score: np.ndarray, probability: np.ndarray) -> float | None:
    """The ROC AUC expected when each row is positive with ``probability``, rows ranked by ``score``:
    sum over pairs i != j of p_i (1 - p_j) [s_i > s_j] (+ half on ties) over sum of p_i (1 - p_j).
    None when there are no expected positives or negatives."""
    order = np.argsort(-score, kind="stable")
    ranked, p = score[order], probability[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(ranked)) + 1]) if ranked.size else np.zeros(0, int)
    if not starts.size:
        return None
    positives, negatives = np.add.reduceat(p, starts), np.add.reduceat(1 - p, starts)
    total_positive, total_negative = positives.sum(), negatives.sum()
    self_pairs = float(np.sum(p * (1 - p)))
    denominator = total_positive * total_negative - self_pairs
    if total_positive <= 0 or total_negative <= 0 or denominator <= 0:
        return None
    negatives_below = total_negative - np.cumsum(negatives)  # negatives ranked strictly lower
    pairs = float(np.sum(positives * negatives_below) + 0.5 * np.sum(positives * negatives))
    return float(np.clip((pairs - 0.5 * self_pairs) / denominator, 0.0, 1.0))


def expected_binary_metrics(probability: np.ndarray, predicted_positive: np.ndarray) -> dict[str, float | None]:
    """Expected accuracy, precision, recall and F1 from the expected confusion matrix (None where the
    ratio has a zero denominator, e.g. precision with no predicted positive)."""
    tp = float(probability[predicted_positive].sum())
    fp = float((1 - probability[predicted_positive]).sum())
    fn = float(probability[~predicted_positive].sum())
    tn = float((1 - probability[~predicted_positive]).sum())
    n = tp + fp + fn + tn
    return {
        "accuracy": (tp + tn) / n if n else None,
        "precision": tp / (tp + fp) if tp + fp > 0 else None,
        "recall": tp / (tp + fn) if tp + fn > 0 else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else None,
    }


def expected_multiclass_metrics(probabilities: np.ndarray, served: np.ndarray, scores: np.ndarray
                                ) -> dict[str, float | None]:
    """Expected accuracy, macro precision / recall / F1 (one-vs-rest expected confusion matrices) and
    macro one-vs-rest ROC AUC from calibrated ``probabilities`` (rows summing to 1), the served class
    index per row and the served ``scores`` (the model's own probabilities, which rank the rows)."""
    n, k = probabilities.shape
    if n == 0:
        return dict.fromkeys(("accuracy", "precision", "recall", "f1", "roc_auc"))
    accuracy = float(probabilities[np.arange(n), served].mean())
    precision, recall, f1, auc = [], [], [], []
    for j in range(k):
        per_class = expected_binary_metrics(probabilities[:, j], served == j)
        expected_actual = probabilities[:, j].sum()
        if expected_actual <= 0 and not (served == j).any():
            continue  # sklearn's macro averages leave out a class neither served nor actual
        precision.append(per_class["precision"] or 0.0)  # zero_division=0, as the realized macro figures
        recall.append(per_class["recall"] or 0.0)
        f1.append(per_class["f1"] or 0.0)
        class_auc = expected_roc_auc(scores[:, j], probabilities[:, j])
        if class_auc is not None:
            auc.append(class_auc)
    return {"accuracy": accuracy, "precision": float(np.mean(precision)) if precision else None,
            "recall": float(np.mean(recall)) if recall else None, "f1": float(np.mean(f1)) if f1 else None,
            "roc_auc": float(np.mean(auc)) if len(auc) >= 2 else None}


class FeatureCoder:
    """Features as the gradient-boosting models take them: numeric columns as floats (missing stays
    NaN, which the model handles), categorical ones as codes of their reference categories."""

    def __init__(self, reference: pd.DataFrame, feature_kinds: dict[str, str]):
        self.kinds = dict(feature_kinds)
        self.codes: dict[str, dict[str, int]] = {}
        for name, kind in self.kinds.items():
            if kind == "categorical":
                self.codes[name] = category_index(reference[name], MAX_CATEGORIES)

    @property
    def categorical_mask(self) -> list[bool]:
        return [kind == "categorical" for kind in self.kinds.values()] + [False]  # + the prediction

    def matrix(self, frame: pd.DataFrame, prediction: np.ndarray, field: str) -> np.ndarray:
        columns = []
        for name, kind in self.kinds.items():
            values = frame[name]
            if kind == "numeric":
                numeric = pd.to_numeric(values, errors="coerce")
                bad = numeric.isna() & values.notna()
                if bad.any():
                    raise ValueError(f"{field}.{name}: non-numeric value {shown(values[bad].iloc[0])} "
                                     f"({int(bad.sum())} in all)")
                column = numeric.to_numpy(dtype=np.float64)
                columns.append(np.where(np.isfinite(column), column, np.nan))
            else:
                columns.append(category_codes(values, self.codes[name]))
        columns.append(prediction)
        return np.column_stack(columns) if columns else np.zeros((len(frame), 0))


def category_index(values: pd.Series, limit: int) -> dict[str, int]:
    """The ``limit`` most frequent labels (as text) of a column, most frequent first, numbered 0..;
    counted per distinct value, not per row."""
    counts = values.value_counts(dropna=True)
    counts = counts[counts > 0]
    merged = counts.groupby([label_text(v) for v in counts.index], sort=False).sum()
    ranked = merged.sort_values(ascending=False, kind="stable").index[:limit]
    return {label: i for i, label in enumerate(ranked)}


def category_codes(values: pd.Series, codes: dict[str, int]) -> np.ndarray:
    """Each value's code in ``codes`` (its label as text), ``len(codes)`` for any other label, NaN
    where missing. Labels are converted once per distinct value (``pandas.factorize``), not per row:
    1M rows of a categorical column took 0.5 s through ``astype(str)``."""
    index, uniques = pd.factorize(values, use_na_sentinel=True)
    other = float(len(codes))
    lookup = np.array([codes.get(label_text(u), other) for u in uniques] + [np.nan], dtype=np.float64)
    return lookup[index]  # the sentinel -1 reads the trailing NaN


def fit_loss_model(design: np.ndarray, loss: np.ndarray, categorical_mask: list[bool], random_state: int):
    """A gradient-boosting model of a non-negative per-row loss (Poisson loss, early stopping on a 20 %
    validation split). A loss that is 0 on every row gives a model that predicts 0."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    if not np.any(loss > 0):
        return None
    model = HistGradientBoostingRegressor(loss="poisson", max_iter=100, learning_rate=0.15, max_leaf_nodes=15,
                                          early_stopping=True, validation_fraction=0.2, n_iter_no_change=10,
                                          categorical_features=categorical_mask, random_state=random_state)
    return model.fit(design, loss)


def predict_loss(model, design: np.ndarray) -> np.ndarray:
    if model is None:
        return np.zeros(design.shape[0])
    return np.maximum(model.predict(design), 0.0)
