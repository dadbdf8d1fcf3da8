"""Tests for nni_proxyless.latency._legacy_forest against the legacy nn-Meter fixture.

The fixture folder is ``$NNI_PROXYLESS_FIXTURES`` if set, else ``<repo>/../shared/fixtures``; tests that need
it skip, naming the path, when it is absent.
"""

import hashlib
import json
import os
import pickle
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from nni_proxyless.latency._legacy_forest import LegacyForest, load_legacy_forest, load_predictor_folder

FIXTURES = Path(os.environ.get('NNI_PROXYLESS_FIXTURES')
                or Path(__file__).resolve().parents[2].parent / 'shared' / 'fixtures')
REFERENCE_FILE = FIXTURES / 'nnmeter_legacy_reference.json'
PREDICTOR_DIR = FIXTURES / 'nnmeter_legacy_predictor' / 'cortexA76cpu_tflite21'
MISSING = '(fixture missing)'
KERNELS = sorted(json.loads(REFERENCE_FILE.read_text())['kernels']) if REFERENCE_FILE.is_file() else [MISSING]


@pytest.fixture(scope='module')
def reference() -> dict:
    """The reference JSON's per-kernel entries; skips when the fixture is absent."""
    if not (REFERENCE_FILE.is_file() and PREDICTOR_DIR.is_dir()):
        pytest.skip(f'legacy nn-Meter fixture not found at {FIXTURES} (set NNI_PROXYLESS_FIXTURES)')
    return json.loads(REFERENCE_FILE.read_text())['kernels']


@pytest.fixture(scope='module')
def forests(reference: dict) -> dict[str, LegacyForest]:
    """Every kernel's forest, loaded once per module through the folder loader."""
    return load_predictor_folder(PREDICTOR_DIR).kernels


@pytest.mark.parametrize('kernel', KERNELS)
def test_fixture_file_is_the_reference_bytes(kernel: str, reference: dict) -> None:
    """Each fixture .pkl has the sha256 the reference records, so the tests read the intended bytes."""
    entry = reference[kernel]
    data = (FIXTURES / entry['file']).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry['sha256']


@pytest.mark.parametrize('kernel', KERNELS)
def test_predictions_equal_reference_exactly(kernel: str, reference: dict) -> None:
    """A forest loaded from its legacy pickle reproduces the original forest's predictions bit for bit."""
    entry = reference[kernel]
    forest = load_legacy_forest(FIXTURES / entry['file'])
    assert forest.n_features == entry['n_features']
    assert forest.n_estimators == entry['n_estimators']
    predictions = forest.predict(entry['features'])
    assert predictions.dtype == np.float64 and predictions.shape == (len(entry['features']),)
    assert predictions.tolist() == entry['predictions']  # exact float64 equality, not approx


@pytest.mark.parametrize('kernel', KERNELS)
def test_batched_prediction_equals_row_by_row(kernel: str, reference: dict, forests: dict) -> None:
    """Predicting all 20 reference rows in one call gives the same values as 20 one-row calls."""
    rows = reference[kernel]['features']
    forest = forests[kernel]
    batched = forest.predict(rows)
    one_by_one = np.concatenate([forest.predict([row]) for row in rows])
    assert len(batched) == len(rows) == 20
    assert batched.tolist() == one_by_one.tolist()


def test_folder_loads_every_kernel_and_fusion_rules(reference: dict) -> None:
    """The folder loader keys forests by kernel name (file stem) and returns fusion_rules.json alongside."""
    package = load_predictor_folder(PREDICTOR_DIR)
    assert sorted(package.kernels) == sorted(reference)
    assert json.loads((PREDICTOR_DIR / 'fusion_rules.json').read_text()) == package.fusion_rules
    assert package.fusion_rules['BF_conv_bn']['obey'] is True
    for kernel, entry in reference.items():
        assert package.kernels[kernel].n_features == entry['n_features']


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
