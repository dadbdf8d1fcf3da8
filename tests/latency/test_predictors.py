"""Every registered predictor (``latency.available_predictors()``) prices calls and builds a table the same way.

The nn-Meter devices run on forests written by ``legacy_forests.py``; ``'cuda'`` runs where torch sees a GPU and
is refused, by name, where it does not.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from nni.nas.nn.pytorch import LayerChoice, ModelSpace
from nni_proxyless.latency import (LatencyPredictor, ModuleCall, NN_METER_DEVICES, available_predictors,
                                   build_latency_table, create_predictor)

from legacy_forests import Package, nnmeter_package  # noqa: F401  (a fixture)


def _conv(width: int, kernel: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(width, width, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU())


class CheapOrDear(ModelSpace):
    """Two choices between a cheap candidate (a 1x1 convolution on 8 channels) and a dear one (5x5 on 8, then 3x3
    on 64 channels and back): about 100 times the work."""

    def __init__(self):
        super().__init__()
        self.stem = _conv(8, 3)
        self.first = LayerChoice({'cheap': _conv(8, 1), 'dear': nn.Sequential(_conv(8, 5), nn.Conv2d(8, 64, 1),
                                                                              _conv(64, 3), nn.Conv2d(64, 8, 1))},
                                 label='first')
        self.second = LayerChoice({'cheap': _conv(8, 1), 'dear': nn.Sequential(nn.Conv2d(8, 64, 1), _conv(64, 3),
                                                                               nn.Conv2d(64, 8, 1))}, label='second')

    def forward(self, x):
        return self.second(self.first(self.stem(x)))


def _options(name: str, package: Package, tmp_path) -> dict:
    if name in NN_METER_DEVICES:
        return {'predictor_dir': package.folder}
    if name in ('cpu', 'cuda'):
        return {'cache_dir': tmp_path}
    return {}


def test_the_registry_knows_every_built_in_predictor():
    """The registry lists the measured, FLOPs and nn-Meter predictors, and nothing unknown."""
    assert set(available_predictors()) == {'cpu', 'cuda', 'flops', *NN_METER_DEVICES}


@pytest.mark.parametrize('name', available_predictors())
def test_predictor_prices_dear_calls_above_cheap_ones(name, nnmeter_package, tmp_path):
    """Each predictor follows the protocol, gives one finite cost per call, and prices ~100x the work higher."""
    if name == 'cuda' and not torch.cuda.is_available():
        with pytest.raises(ValueError, match="applied_hardware='cuda' needs a CUDA device"):
            create_predictor(name, **_options(name, nnmeter_package, tmp_path))
        return
    predictor = create_predictor(name, **_options(name, nnmeter_package, tmp_path))
    assert isinstance(predictor, LatencyPredictor) and predictor.unit in ('ms', 'MFLOPs') and predictor.description
    x = torch.randn(1, 8, 32, 32)
    space = CheapOrDear().eval()
    costs = predictor.predict([ModuleCall(space.first.cheap, (x,), {}), ModuleCall(space.first.dear, (x,), {})])
    assert len(costs) == 2 and all(math.isfinite(cost) and cost >= 0 for cost in costs)
    assert costs[1] > costs[0]


@pytest.mark.parametrize('name', [name for name in available_predictors()
                                  if name != 'cuda' or torch.cuda.is_available()])
def test_predictor_builds_a_table_that_ranks_architectures_by_work(name, nnmeter_package, tmp_path):
    """A table built with each predictor prices every architecture in the predictor's unit, the all-dear one
    highest and the all-cheap one lowest."""
    table = build_latency_table(CheapOrDear(), name, (1, 8, 32, 32), **_options(name, nnmeter_package, tmp_path))
    predictor = create_predictor(name, **_options(name, nnmeter_package, tmp_path))
    assert table.unit == predictor.unit and table.hardware == predictor.description
    assert set(table.labels) == {'first', 'second'}
    prices = {(a, b): table.predict({'first': a, 'second': b})
              for a, b in itertools.product(['cheap', 'dear'], repeat=2)}
    assert all(math.isfinite(price) for price in prices.values())
    assert prices['dear', 'dear'] == max(prices.values()) and prices['cheap', 'cheap'] == min(prices.values())
