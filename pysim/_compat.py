"""Small shims over scikit-learn API changes, so pysim's estimators run on 1.3 through 1.9+.

scikit-learn moved input validation from the private ``BaseEstimator._validate_data`` method
to the public function ``sklearn.utils.validation.validate_data`` (1.6), and estimator tags
from ``_more_tags`` dicts to ``__sklearn_tags__`` dataclasses (1.6). Everything version
dependent lives here, so the estimators themselves read like current scikit-learn code.
"""

from __future__ import annotations

from typing import Any

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - exercised only on old scikit-learn

    def validate_data(
        estimator: Any,
        X: Any = "no_validation",
        y: Any = "no_validation",
        reset: bool = True,
        **check_params: Any,
    ) -> Any:
        """Fallback to the private method that ``validate_data`` replaced."""
        return estimator._validate_data(X, y, reset=reset, **check_params)


__all__ = ["validate_data"]
