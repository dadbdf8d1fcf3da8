"""Shared fixtures: scikit-learn's digits as loaders, small model spaces, and a helper that runs a search."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import nni_proxyless  # noqa: F401  (filters NNI's torch-version warnings first)
import nni
from nni.nas.evaluator.pytorch import Classification, DataLoader
from nni.nas.execution.sequential import SequentialTrialCommandChannel
from nni.nas.experiment import NasExperiment
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableConv2d
from nni.runtime.log import silence_stdout

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'
sys.path.insert(0, str(EXAMPLES))  # the examples' shared helpers (_common.py), which the tests use too
from _common import digits  # noqa: E402

# NNI's console handler keeps the stream it found at import (pytest's capture, closed after each test).
silence_stdout()

# `make test` runs the suite in 2 processes (pytest-xdist): one torch thread each, so that they share the cores
# rather than each asking for all of them (the searches here are small: one thread is most of their speed).
if os.environ.get('PYTEST_XDIST_WORKER'):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``): the tests of one file run in one process, so that its module
    fixtures (a search shared by its tests) are built once; the tests that start NNI's manager (the web UI) run one
    after another in one process, since each starts Node.js and waits for it; the hub spaces' tests, which share
    nothing, are spread over the processes."""
    for item in items:
        name = Path(str(item.fspath)).name
        if name not in _SPREAD:
            item.add_marker(pytest.mark.xdist_group('nni_manager' if name in _ONE_AT_A_TIME else str(item.fspath)))


_ONE_AT_A_TIME = {'test_webui.py', 'test_webui_search.py', 'test_webui_port.py', 'test_retiarii.py'}
_SPREAD = {'test_hub_spaces.py'}

SHARED_FIXTURES = Path(os.environ.get('NNI_PROXYLESS_FIXTURES')
                       or Path(__file__).resolve().parents[1].parent / 'shared' / 'fixtures')
"""A reference fixture of nn-Meter's predictor format, outside the repository; the suite needs it nowhere else."""

# latency/test_shared_fixture.py checks the forest reader on that fixture: collected only where it exists.
collect_ignore = [] if (SHARED_FIXTURES / 'nnmeter_legacy_reference.json').is_file() \
    else ['latency/test_shared_fixture.py']


def digits_datasets(n_train: int = 1000, seed: int = 0):
    """Digits (8x8 images, 10 classes) split into a weight-training part and an architecture part."""
    data = digits(seed=seed)
    return (torch.utils.data.Subset(data, range(n_train)), torch.utils.data.Subset(data, range(n_train, len(data))))


def digits_accuracy(model: nn.Module, batch_size: int = 64) -> float:
    """Top-1 accuracy (argmax) of ``model`` in eval mode on the digits validation images, in the validation
    loader's batches: what the evaluator's ``val_acc`` gives, computed by hand."""
    x, y = digits_datasets()[1][:]
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(xb).argmax(-1) == yb).sum()) for xb, yb in zip(x.split(batch_size),
                                                                              y.split(batch_size)))
    return correct / len(y)


def digits_evaluator(epochs: int = 1, batch_size: int = 64, learning_rate: float = 3e-3, **trainer_kwargs):
    """NNI's Classification evaluator on digits, quiet, CPU."""
    train, val = digits_datasets()
    options = dict(max_epochs=epochs, accelerator='cpu', enable_progress_bar=False, logger=False,
                   enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0)
    options.update(trainer_kwargs)
    return Classification(
        train_dataloaders=DataLoader(train, batch_size=batch_size, shuffle=True),
        val_dataloaders=DataLoader(val, batch_size=batch_size),
        num_classes=10, learning_rate=learning_rate, **options)


def nni_reports(monkeypatch) -> dict[str, list]:
    """What reaches NNI's experiment from now on (its in-process trial channel): ``{'PERIODICAL': [...],
    'FINAL': [...]}``."""
    received: dict[str, list] = {'PERIODICAL': [], 'FINAL': []}
    original = SequentialTrialCommandChannel.send_metric

    def send_metric(self, **metric):
        received[metric['type']].append(metric['value'])
        return original(self, **metric)
    monkeypatch.setattr(SequentialTrialCommandChannel, 'send_metric', send_metric)
    return received


def run_search(space: ModelSpace, strategy, evaluator, workdir: Path) -> NasExperiment:
    """Run ``strategy`` on ``space`` through NNI's NasExperiment, with NNI's files under ``workdir``."""
    exp = NasExperiment(space, evaluator, strategy)
    exp.config.experiment_working_directory = str(workdir)
    exp.run()
    return exp


def planted_found(space_of, seeds: int, tmp_path: Path, **options) -> int:
    """In how many of ``seeds`` searches (10 epochs on digits, an architecture step every batch) the exported top-1
    is the planted architecture of ``space_of(seed)``; ``options`` go to ``Proxyless``."""
    from nni_proxyless import Proxyless
    solved = 0
    for seed in range(seeds):
        torch.manual_seed(seed)
        space = space_of(seed)
        exp = run_search(space, Proxyless(arch_update_every=1, seed=seed, **options), digits_evaluator(epochs=10),
                         tmp_path / str(seed))
        solved += exp.export_top_models(top_k=1, formatter='dict')[0] == space.planted_architecture()
    return solved


class ConvSpace(ModelSpace):
    """A small convolutional space for 8x8 digits: two convolution choices, then a linear head.

    With ``batchnorm=True`` the stem and every convolution candidate end in BatchNorm (and have no bias), so that
    each architecture needs statistics of its own.
    """

    def __init__(self, width: int = 8, batchnorm: bool = False):
        super().__init__()

        def conv(channels_in: int, kernel: int) -> nn.Module:
            if not batchnorm:
                return nn.Conv2d(channels_in, width, kernel, padding=kernel // 2)
            return nn.Sequential(nn.Conv2d(channels_in, width, kernel, padding=kernel // 2, bias=False),
                                 nn.BatchNorm2d(width))
        self.stem = conv(1, 3)
        self.conv1 = LayerChoice({'k3': conv(width, 3), 'k5': conv(width, 5), 'skip': nn.Identity()}, label='conv1')
        self.conv2 = LayerChoice({'k3': conv(width, 3), 'k1': conv(width, 1)}, label='conv2')
        self.head = nn.Linear(width * 64, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.head(x.flatten(1))


class StrideSpace(ModelSpace):
    """A stride choice before flatten and a fixed linear layer: only stride 1 gives the 16 * 8 * 8 features that
    layer reads from 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.conv = MutableConv2d(1, 16, 3, padding=1, stride=nni.choice('s', [1, 2]))
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(x), 1))


@pytest.fixture(autouse=True)
def _quiet_lightning():
    logging.getLogger('pytorch_lightning').setLevel(logging.ERROR)
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    yield



class Shift(nn.Module):
    """Adds a constant to its input."""

    def __init__(self, offset: float):
        super().__init__()
        self.offset = offset

    def forward(self, x):
        return x + self.offset


class BatchNormSpace(ModelSpace):
    """A BatchNorm shared by the candidates of a choice whose outputs are shifted apart (+3 and -3).

    The supernet's running statistics average over the paths sampled so far and fit neither candidate (their
    mean lies between the two, their variance counts the gap), so the most probable architecture needs
    statistics of its own. Each candidate also has a BatchNorm of its own, and so has the stem.
    """

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.conv = LayerChoice({
            'up': nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), Shift(3.0)),
            'down': nn.Sequential(nn.Conv2d(width, width, 5, padding=2), nn.BatchNorm2d(width), Shift(-3.0))},
            label='conv')
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width * 64, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(self.stem(x))))
        return self.head(x.flatten(1))
