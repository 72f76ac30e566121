"""One pickle per scikit-learn estimator class of the installed version, each approved.

``sklearn.utils.all_estimators()`` lists every estimator class; each is built the way
scikit-learn's own common tests build it (required parameters filled in), fitted on a tiny
data set where it can be (fitted estimators carry trees, losses, binners, neighbour trees,
random states), pickled with ``pickle.dumps`` and scanned. Any finding at medium or above is
a pack gap or a policy error, so the test fails on it.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.policy import Verdict

from .helpers import verdict_of

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is a test dependency (pyproject [test])")
from sklearn.utils import all_estimators  # noqa: E402

try:  # scikit-learn's own way to build an instance with its required parameters
    from sklearn.utils._test_common.instance_generator import _construct_instances
except ImportError:  # pragma: no cover - older scikit-learn
    _construct_instances = None

ESTIMATORS = sorted(all_estimators(), key=lambda pair: pair[0])
SEVERE = {Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL}


def _instance(cls: type) -> object:
    if _construct_instances is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return next(iter(_construct_instances(cls)))
        except Exception:  # noqa: BLE001 - fall back to defaults
            pass
    try:
        return cls()
    except TypeError:  # meta-estimators scikit-learn's generator skips (FrozenEstimator)
        from sklearn.linear_model import LogisticRegression

        return cls(LogisticRegression())


def _fitted(estimator: object) -> object:
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(40, 4))) + 0.1
    y_class = np.array([0, 1] * 20)
    y_reg = x[:, 0] * 2.0 + 0.5
    for args in ((x, y_class), (x, y_reg), (x,)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return estimator.fit(*args)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - unfitted is still a pickle users save
            continue
    return estimator


def test_every_estimator_is_listed():
    assert len(ESTIMATORS) > 150, len(ESTIMATORS)  # the whole catalogue, not a handful


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=[name for name, _ in ESTIMATORS])
def test_estimator_pickle_is_approved(name: str, cls: type, tmp_path: Path) -> None:
    estimator = _fitted(_instance(cls))
    target = tmp_path / f"{name}.pkl"
    target.write_bytes(pickle.dumps(estimator, protocol=5))
    verdict, findings, complete = verdict_of(target)
    severe = [f.to_dict() for f in findings if f.severity in SEVERE]
    assert verdict is Verdict.APPROVED and complete and not severe, severe
