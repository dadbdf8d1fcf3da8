"""The legacy forest reader on the reference fixture of nn-Meter's predictor format, when that fixture is present.

The fixture (``$NNI_PROXYLESS_FIXTURES``, else ``<repository>/../shared/fixtures``) holds one device's predictor
files, byte for byte as scikit-learn 0.23.1 writes them, and the predictions of the original forests. The rest of
the suite writes its own forests (``legacy_forests.py``); this module is collected only where the fixture exists
(see ``tests/conftest.py``), to check the reader once more against files it did not write.
"""

import json

import pytest

from nni_proxyless.latency._nnmeter_files import load_predictor_folder

from conftest import SHARED_FIXTURES

REFERENCE = json.loads((SHARED_FIXTURES / 'nnmeter_legacy_reference.json').read_text())


@pytest.fixture(scope='module')
def forests():
    """The fixture device's forests, read once through the folder reader."""
    return load_predictor_folder(SHARED_FIXTURES / 'nnmeter_legacy_predictor' / REFERENCE['device']).kernels


@pytest.mark.parametrize('kernel', sorted(REFERENCE['kernels']))
def test_reader_reproduces_the_reference_predictions_exactly(kernel, forests):
    """Each kernel's forest, read from the fixture, predicts the original forest's values bit for bit."""
    entry = REFERENCE['kernels'][kernel]
    forest = forests[kernel]
    assert forest.n_features == entry['n_features'] and forest.n_estimators == entry['n_estimators']
    assert forest.predict(entry['features']).tolist() == entry['predictions']
