"""PNG plots of a search, drawn without touching the user's matplotlib backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
from nni_proxyless import Proxyless

from conftest import ConvSpace, digits_evaluator, run_search

_IMPORT_EVERYTHING = """
import matplotlib
matplotlib.use('svg')
import nni_proxyless
from nni_proxyless import Proxyless, ProxylessTrainer
import nni_proxyless.callbacks.plots, nni_proxyless.training, nni_proxyless.webui.retrain
print(matplotlib.get_backend())
"""


def test_importing_the_package_keeps_the_matplotlib_backend():
    """A user's backend (here 'svg', chosen before the import) is still the backend after importing everything."""
    root = Path(__file__).resolve().parents[1]
    env = {name: value for name, value in os.environ.items() if name != 'MPLBACKEND'}
    done = subprocess.run([sys.executable, '-c', _IMPORT_EVERYTHING], capture_output=True, text=True, timeout=300,
                          cwd=root, env=dict(env, PYTHONPATH=str(root)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == 'svg'


def test_search_writes_three_plots_into_the_logger_folder(tmp_path):
    """With a logger and a latency table, the search ends with three non-empty PNG files in the logger's folder."""
    evaluator = digits_evaluator(epochs=2, limit_train_batches=4, logger=True, default_root_dir=str(tmp_path))
    strategy = Proxyless(seed=0, arch_update_every=1, applied_hardware='flops', dummy_input=(1, 1, 8, 8),
                         ref_latency=0.1)
    run_search(ConvSpace(), strategy, evaluator, tmp_path)
    folder = next((tmp_path / 'lightning_logs').glob('version_*'))
    for name in ('probabilities.png', 'curves.png', 'top_k.png'):
        image = matplotlib.image.imread(folder / name)
        assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0, name
