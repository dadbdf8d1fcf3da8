"""The legacy forest reader (``nni_proxyless.latency._legacy_forest``) on forests in scikit-learn 0.23.1's layout.

The forests are fitted here and written as scikit-learn 0.23.1 pickled them (``legacy_forests.py``); scikit-learn's
own ``predict`` on the fitted forests is the reference.
"""

import os
import pickle
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import InconsistentVersionWarning

from nni_proxyless.latency._legacy_forest import load_legacy_forest
from nni_proxyless.latency._nnmeter_files import load_predictor_folder

from legacy_forests import FEATURES, device_kernels, nnmeter_package  # noqa: F401  (a fixture)

DEVICE = 'cortexA76cpu_tflite21'


def _rows(n_features: int, count: int = 40, seed: int = 0) -> np.ndarray:
    """Feature rows spread over the forests' training range and beyond it, with some exact repeats."""
    rng = np.random.default_rng(seed)
    rows = np.exp(rng.uniform(-1.0, 8.5, size=(count, n_features)))
    rows[::7] = np.round(rows[::7])
    return rows


@pytest.mark.parametrize('kernel', sorted(FEATURES))
def test_predictions_equal_scikit_learns_exactly(kernel, nnmeter_package):
    """Read from its legacy pickle, each kernel's forest predicts what scikit-learn predicts, bit for bit."""
    forest = load_legacy_forest(next(nnmeter_package.folder.glob(f'*/{kernel}.pkl')))
    fitted = nnmeter_package.forests[kernel]
    rows = _rows(FEATURES[kernel])
    assert forest.n_features == FEATURES[kernel] and forest.n_estimators == len(fitted.estimators_)
    assert forest.sklearn_version == '0.23.1'
    predictions = forest.predict(rows)
    assert predictions.dtype == np.float64 and predictions.shape == (len(rows),)
    assert predictions.tolist() == fitted.predict(rows).tolist()  # exact float64 equality, not approx


def test_current_scikit_learn_cannot_load_the_files(nnmeter_package):
    """The files are in the legacy layout: a plain pickle.load on current scikit-learn fails as nn-Meter #131 says."""
    data = (nnmeter_package.folder / DEVICE / 'conv-bn-relu.pkl').read_bytes()
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError, match='incompatible dtype'):
        warnings.simplefilter('always')
        pickle.loads(data)
    assert any(issubclass(warning.category, InconsistentVersionWarning) for warning in caught)


def test_batched_prediction_equals_row_by_row(nnmeter_package):
    """Predicting many rows in one call gives the same values as one call per row."""
    forest = load_legacy_forest(nnmeter_package.folder / DEVICE / 'dwconv-bn-relu.pkl')
    rows = _rows(7, count=25, seed=3)
    assert forest.predict(rows).tolist() == np.concatenate([forest.predict([row]) for row in rows]).tolist()


def test_folder_loads_every_kernel_and_fusion_rules(nnmeter_package):
    """The folder reader keys forests by kernel name (file stem) and returns fusion_rules.json alongside."""
    for device, kernels in device_kernels().items():
        package = load_predictor_folder(nnmeter_package.folder / device)
        assert sorted(package.kernels) == sorted(kernels)
        assert all(package.kernels[kernel].n_features == FEATURES[kernel] for kernel in kernels)
    assert package.fusion_rules['BF_conv_bn'] == {'obey': True} and package.fusion_rules['MON'] == {'obey': False}


def test_wrong_feature_count_is_named(nnmeter_package):
    """Rows of the wrong width are refused, naming the file and the expected shape."""
    forest = load_legacy_forest(nnmeter_package.folder / DEVICE / 'fc.pkl')
    with pytest.raises(ValueError, match=r'fc\.pkl: expected features of shape \(n, 4\), got \(1, 3\)'):
        forest.predict([[1.0, 2.0, 3.0]])


class _Payload:
    """Pickles as ``func(*args)``: what a malicious predictor file would do."""

    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize('func', [os.system, subprocess.Popen], ids=['os.system', 'subprocess.Popen'])
def test_pickle_naming_other_global_is_refused(func, tmp_path: Path) -> None:
    """A pickle calling a global outside the allow-list is refused, naming that global, and never runs."""
    marker = tmp_path / 'payload_ran'
    args = (f'touch {marker}',) if func is os.system else (['touch', str(marker)],)
    evil = tmp_path / 'conv-bn-relu.pkl'
    evil.write_bytes(pickle.dumps(_Payload(func, args), protocol=3))
    refused = f'{func.__module__}.{func.__qualname__}'  # e.g. 'posix.system': how pickle names os.system
    assert refused.encode() in evil.read_bytes().replace(b'\n', b'.')
    with pytest.raises(pickle.UnpicklingError, match=f'refused global {refused}') as info:
        load_legacy_forest(evil)
    assert str(evil) in str(info.value)
    with pytest.raises(pickle.UnpicklingError, match=f'refused global {refused}'):
        load_predictor_folder(tmp_path)
    assert not marker.exists()


def test_absent_folder_raises_quickly_naming_it(tmp_path: Path) -> None:
    """An absent predictor folder raises FileNotFoundError at once, with the folder in the message."""
    missing = tmp_path / 'no_such_device_tflite21'
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match='no_such_device_tflite21') as info:
        load_predictor_folder(missing)
    assert time.perf_counter() - start < 1.0
    assert str(missing) in str(info.value)
