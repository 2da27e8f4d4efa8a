from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from models.compiled_trees import CompiledBooster, CompiledEnsemble


def test_compiled_trees_give_scikit_learns_figures_with_missing_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((3000, 6))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + rng.random(3000)) > 1
    classifier = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15).fit(x, y)
    regressor = HistGradientBoostingRegressor(max_iter=40, max_leaf_nodes=3).fit(
        x[:, :4], np.nan_to_num(x[:, 1]) + rng.random(3000)
    )
    few = x[:20]
    assert np.allclose(
        CompiledBooster(classifier).predict(few), classifier.predict_proba(few)[:, 1]
    )
    ensemble = CompiledEnsemble([CompiledBooster(classifier), CompiledBooster(regressor)])
    both = ensemble.predict(few)
    assert np.allclose(both[:, 0], classifier.predict_proba(few)[:, 1])
    assert np.allclose(both[:, 1], regressor.predict(few[:, :4]))
