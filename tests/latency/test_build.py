"""Latency tables built from a space: the assembly against an additive predictor, the disk cache, bad inputs."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nni.nas.nn.pytorch import InputChoice, LayerChoice, ModelSpace, Repeat
from nni_proxyless.latency import build_latency_table
from nni_proxyless.latency._calibration import CALIBRATION_PATHS
from nni_proxyless.latency.measure import MeasuredPredictor
from nni_proxyless.ops import SpaceError

from conftest import ConvSpace, StrideSpace


class Block(nn.Module):
    """A Repeat block with a fixed part and a nested choice."""

    def __init__(self, index: int):
        super().__init__()
        self.fixed = nn.Linear(16, 16)
        self.choice = LayerChoice([nn.Linear(16, 16), nn.Sequential(nn.Linear(16, 64), nn.Linear(64, 16))],
                                  label=f'inner{index}')

    def forward(self, x):
        return self.choice(torch.relu(self.fixed(x)))


class NestedSpace(ModelSpace):
    """Fixed layers, a LayerChoice with a choice nested in one candidate, an InputChoice, a Repeat of Blocks."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(8, 16)
        self.op = LayerChoice({'small': nn.Linear(16, 16),
                               'nested': nn.Sequential(nn.Linear(16, 32), LayerChoice(
                                   [nn.Linear(32, 16), nn.Sequential(nn.Linear(32, 128), nn.Linear(128, 16))],
                                   label='deep'))}, label='op')
        self.skip = InputChoice(2, 1, label='skip')
        self.blocks = Repeat(lambda i: Block(i), (0, 3), label='depth')
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = self.stem(x)
        x = self.skip([self.op(x), x])
        return self.head(self.blocks(x))


def _flops(model: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 1e6


def test_table_predicts_additive_cost_of_every_architecture():
    """With FLOPs (additive), the table's prediction equals the FLOPs of the frozen subnet, for 30 archs."""
    space = NestedSpace()
    table = build_latency_table(space, 'flops', (4, 8))
    x, rng = torch.randn(4, 8), random.Random(0)
    mutables = space.simplify()
    for _ in range(30):
        sample = {label: rng.choice(list(m.grid())) if label == 'skip' else rng.choice(list(m.values))
                  for label, m in mutables.items()}
        assert table.predict(sample) == pytest.approx(_flops(space.freeze(sample), x), rel=1e-9)


def test_second_build_comes_from_the_disk_cache(tmp_path, monkeypatch):
    """A second 'cpu' build with the same cache folder measures nothing and gives the same table."""
    measured = []
    original = MeasuredPredictor._measure
    monkeypatch.setattr(MeasuredPredictor, '_measure',
                        lambda self, calls: measured.extend(calls) or original(self, calls))
    first = build_latency_table(NestedSpace(), 'cpu', (4, 8), cache_dir=tmp_path, repeats=3)
    count = len(measured)
    second = build_latency_table(NestedSpace(), 'cpu', (4, 8), cache_dir=tmp_path, repeats=3)
    assert count > 0 and len(measured) == count
    assert second.to_json() == first.to_json()


@pytest.mark.parametrize('shape', [(1, 8, 8), (8, 8)])
def test_dummy_input_of_wrong_rank_is_named(shape):
    """A dummy input of the wrong rank raises an error showing its shape, before anything is measured."""
    with pytest.raises(ValueError, match=rf'dummy input of shape \({shape[0]}, 8(, 8)?\) cannot run'):
        build_latency_table(ConvSpace(), 'cpu', shape, cache_dir=False)


def test_a_space_error_is_not_blamed_on_the_dummy_input():
    """The dummy input runs at the first values; the error names the value that fails, the argument holding it, the
    module that failed and its input's shape (16 channels of 4 x 4 at stride 2), not the dummy input."""
    with pytest.raises(SpaceError) as caught:
        build_latency_table(StrideSpace(), 'flops', (1, 1, 8, 8))
    message = str(caught.value)
    assert "at s=2" in message and "MutableConv2d at 'conv', argument 'stride'" in message
    assert f"Linear at 'fc' failed on inputs of shape (1, {16 * 4 * 4})" in message
    assert 'dummy input' not in message.lower()


def test_unknown_hardware_lists_the_allowed_names():
    """An unknown predictor name is refused with the list of names."""
    with pytest.raises(ValueError, match="Unknown applied_hardware 'tpu'.*cpu.*flops"):
        build_latency_table(NestedSpace(), 'tpu', (4, 8))


class InContextFlops:
    """A predictor whose modules cost their FLOPs alone and ``c + s * FLOPs + b * weight megabytes`` as a whole
    network: the in-context slowdown that calibration must fit (the network is the only call that is a
    ModelSpace)."""

    unit, description, calibrate = 'MFLOPs', 'FLOPs, slower in context', True

    def __init__(self, offset: float, scale: float, per_megabyte: float = 0.0):
        self.offset, self.scale, self.per_megabyte, self.network_calls = offset, scale, per_megabyte, 0
        self.priced = []  # the FLOPs of the whole networks priced

    def predict(self, calls):
        prices = []
        for call in calls:
            flops = _flops(call.module, *call.args)
            if isinstance(call.module, ModelSpace):
                self.network_calls += 1
                self.priced.append(flops)
                flops = self.offset + self.scale * flops + self.per_megabyte * _megabytes(call.module)
            prices.append(flops)
        return prices


class WithWholeNetworkTwin(InContextFlops):
    """InContextFlops whose ``for_whole_networks()`` hands out another one (with the same costs) for the whole
    networks."""

    def for_whole_networks(self) -> InContextFlops:
        self.twin = InContextFlops(self.offset, self.scale, self.per_megabyte)
        return self.twin


def _megabytes(model: nn.Module) -> float:
    return sum(4 * t.numel() for t in [*model.parameters(), *model.buffers()]) / 2 ** 20


@pytest.mark.parametrize('scale,per_megabyte', [(1.3, 0.0), (0.8, 0.0), (1.3, 50.0)])
def test_calibration_fits_whole_network_prices(scale, per_megabyte):
    """With calibrate=True and modules that cost `scale` times more in the network, plus `per_megabyte` for
    every megabyte of weights the network holds, the table predicts offset + scale * FLOPs + per_megabyte *
    megabytes of every frozen subnet, from whole-network prices."""
    space, predictor = NestedSpace(), InContextFlops(offset=0.5, scale=scale, per_megabyte=per_megabyte)
    table = build_latency_table(space, predictor, (4, 8))
    assert predictor.network_calls == 1 + CALIBRATION_PATHS
    x, rng = torch.randn(4, 8), random.Random(1)
    mutables = space.simplify()
    for _ in range(30):
        sample = {label: rng.choice(list(m.grid())) if label == 'skip' else rng.choice(list(m.values))
                  for label, m in mutables.items()}
        subnet = space.freeze(sample)
        expected = 0.5 + scale * _flops(subnet, x) + per_megabyte * _megabytes(subnet)
        assert table.predict(sample) == pytest.approx(expected, rel=1e-6)


def test_whole_networks_are_priced_by_the_predictors_whole_network_twin():
    """A predictor with ``for_whole_networks()`` prices the modules; its twin prices every whole network."""
    predictor = WithWholeNetworkTwin(offset=0.5, scale=1.3)
    table = build_latency_table(NestedSpace(), predictor, (4, 8))
    assert predictor.network_calls == 0 and predictor.twin.network_calls == 1 + CALIBRATION_PATHS
    sample = {label: next(iter(m.grid())) if label == 'skip' else list(m.values)[0]
              for label, m in NestedSpace().simplify().items()}
    assert table.predict(sample) == pytest.approx(0.5 + 1.3 * _flops(NestedSpace().freeze(sample), torch.randn(4, 8)))
