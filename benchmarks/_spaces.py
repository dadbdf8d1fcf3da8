"""Model spaces and data of the benchmarks: NNI's hub ProxylessNAS, a synthetic scaling space, digits spaces."""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import nni_proxyless  # noqa: F401  (quiets NNI's warnings about this torch release)
from nni.mutable import CategoricalMultiple
from nni.nas.evaluator.pytorch import DataLoader
from nni.nas.hub.pytorch import DARTS, MobileNetV3Space, ProxylessNAS
import nni
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableBatchNorm2d, MutableConv2d, MutableLinear, Repeat
from nni.nas.space import model_context

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
from planted import PlantedSpace  # noqa: E402,F401  (the tests' planted-optimum space, reused as is)


def hub_space(width_mult: float = 0.35, num_labels: int = 10) -> ProxylessNAS:
    """NNI's ProxylessNAS hub space, the standard real-world space for cost figures."""
    return ProxylessNAS(num_labels=num_labels, width_mult=width_mult)


def mobilenet_space(num_labels: int = 10, **options) -> MobileNetV3Space:
    """NNI's hub MobileNetV3 space at its defaults (value choices of width, kernel, expansion, depth; optional SE).

    The same construction as the tests' hub-space test, which runs it on 32x32 inputs; only the head has 10 labels
    (``options``: other arguments of ``MobileNetV3Space``, e.g. the tests' small variant).
    """
    return MobileNetV3Space(num_labels=num_labels, **options)


def darts_space(width: int = 16, num_cells: int = 8) -> DARTS:
    """NNI's hub DARTS cell space for CIFAR (32x32, 10 labels): NNI ``Cell``s of 8 operations, 2 inputs per node."""
    return DARTS(width=width, num_cells=num_cells, dataset='cifar')


def random_sample(space: ModelSpace, seed: int) -> dict:
    """A uniformly random architecture of ``space`` (one value per label), fixed by ``seed``."""
    rng = random.Random(seed)
    return {label: _draw(rng, mutable) for label, mutable in space.simplify().items()}


def subnet(space_factory: Callable[[], ModelSpace], sample: dict) -> nn.Module:
    """The architecture ``sample`` of ``space_factory``'s space built alone (NNI's ``model_context``: only its
    chosen candidates are made, as when an exported architecture is trained; ``space.freeze`` builds every
    candidate first)."""
    with model_context(sample):
        return space_factory()


def _draw(rng: random.Random, mutable) -> object:
    """One value of a label: a candidate, or for an ``InputChoice`` (``CategoricalMultiple``) a list of them."""
    if isinstance(mutable, CategoricalMultiple):
        count = mutable.n_chosen if mutable.n_chosen is not None else rng.randint(1, len(mutable.values))
        return sorted(rng.sample(list(mutable.values), count))
    return rng.choice(list(mutable.values))


def all_samples(space: ModelSpace) -> list[dict]:
    """Every architecture of a small space (the product of its labels' values)."""
    labels = list(space.simplify().items())
    return [dict(zip([label for label, _ in labels], values))
            for values in itertools.product(*[list(m.values) for _, m in labels])]


def fake_loader(batches: int, batch_size: int, resolution: int = 32, seed: int = 0) -> DataLoader:
    """Random images and labels (10 classes), fixed by ``seed``, as a traced NNI DataLoader."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batches * batch_size, 3, resolution, resolution, generator=gen)
    y = torch.randint(10, (batches * batch_size,), generator=gen)
    return DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def _conv_bn_relu(channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU())


class _ChoiceStack(ModelSpace):
    """A conv-BN-ReLU stem, one LayerChoice per layer (``candidates(layer)``), global average pooling, a head."""

    def __init__(self, in_channels: int, channels: int, layers: int, candidates, label: str):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.choices = nn.ModuleList([LayerChoice(candidates(), label=f'{label}{i}') for i in range(layers)])
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        x = self.stem(x)
        for choice in self.choices:
            x = choice(x)
        return self.head(x.mean((2, 3)))


class ScalingSpace(_ChoiceStack):
    """``layers`` LayerChoices of ``candidates`` equal-cost 3x3 conv-BN-ReLU candidates, on 3x32x32 inputs.

    All candidates cost the same, so every frozen subnet costs the same and a search's cost ratio measures only
    how much of the supernet it runs per step.
    """

    def __init__(self, candidates: int, layers: int = 4, channels: int = 16):
        super().__init__(3, channels, layers, lambda: {f'conv{k}': _conv_bn_relu(channels, 3)
                                                       for k in range(candidates)}, 'layer')


class _Bottleneck(nn.Module):
    """``k x k`` conv to ``width`` channels, then 1x1 back to ``channels``, with a residual."""

    def __init__(self, channels: int, kernel: int, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, width, kernel, padding=kernel // 2, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x):
        return torch.relu(x + self.body(x))


DIGITS_KERNELS = (1, 3, 5)
DIGITS_WIDTHS = (8, 16, 48)


class DigitsConvSpace(_ChoiceStack):
    """A small convolutional space for 8x8 digits: ``layers`` choices of kernel (1/3/5) x width (8/16/48) or skip.

    Ten candidates per choice (1000 architectures with three layers) whose FLOPs span two orders of magnitude.
    The head averages over space, so the choices matter: with 15 epochs, all-skip scores about 0.5 on digits,
    1x1 kernels about 0.8, 3x3 and wider about 0.97-0.99.
    """

    def __init__(self, layers: int = 3, channels: int = 16):
        def candidates():
            ops = {f'k{k}w{w}': _Bottleneck(channels, k, w) for k in DIGITS_KERNELS for w in DIGITS_WIDTHS}
            return {**ops, 'skip': nn.Identity()}
        super().__init__(1, channels, layers, candidates, 'block')


def digits_tensors(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """scikit-learn's digits (1797 8x8 images) split into search-train 900, search-val 400 and test 497."""
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(y, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    return {'train': (x[:900], y[:900]), 'val': (x[900:1300], y[900:1300]), 'test': (x[1300:], y[1300:])}


def digits_loader(part: tuple[torch.Tensor, torch.Tensor], batch_size: int = 64, shuffle: bool = True,
                  seed: int = 0) -> DataLoader:
    """A traced NNI DataLoader over one part of :func:`digits_tensors` (shuffled by its own generator)."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(torch.utils.data.TensorDataset(*part), batch_size=batch_size, shuffle=shuffle, generator=gen)


class Zero(nn.Module):
    """NAS-Bench-201's ``none``: the edge carries nothing (an all-zero output of the input's shape)."""

    def forward(self, x):
        return x.mul(0.0)


def _relu_conv_bn(channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(channels))


CELL_OPS = ('none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3')
CELL_EDGES = ('edge_0_1', 'edge_0_2', 'edge_1_2')


def _cell_op(name: str, channels: int) -> nn.Module:
    if name == 'none':
        return Zero()
    if name == 'skip_connect':
        return nn.Identity()
    if name == 'avg_pool_3x3':
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return _relu_conv_bn(channels, 1 if name == 'nor_conv_1x1' else 3)


class _Cell(nn.Module):
    """NAS-Bench-201's cell cut to three nodes: ``n1 = e01(n0)``, ``n2 = e02(n0) + e12(n1)``; returns ``n2``."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleDict({edge: LayerChoice({op: _cell_op(op, channels) for op in CELL_OPS}, label=edge)
                                    for edge in CELL_EDGES})

    def forward(self, x):
        n1 = self.edges['edge_0_1'](x)
        return self.edges['edge_0_2'](x) + self.edges['edge_1_2'](n1)


class DigitsCellSpace(ModelSpace):
    """A NAS-Bench-201-style cell space for 8x8 digits: 5 ** 3 = 125 architectures, each cheap to train alone.

    Stem (3x3 conv to ``channels``, BatchNorm), one three-node cell whose three edges are ``LayerChoice``s of
    NAS-Bench-201's operations (``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3`` (ReLU-conv-BN),
    ``avg_pool_3x3``), BatchNorm-ReLU, global average pooling, a linear head. With ``none`` on both edges into
    the last node the output is constant (chance accuracy).
    """

    def __init__(self, channels: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.cell = _Cell(channels)
        self.tail = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        return self.head(self.tail(self.cell(self.stem(x))).mean((2, 3)))


VALUE_WIDTHS = (8, 16, 24)
VALUE_KERNELS = (1, 3, 5)
VALUE_DEPTHS = (1, 2, 3)


class _ValueBlock(nn.Module):
    """``relu(x + BN(conv_k(x)))`` at the space's shared width, its kernel size a choice of its own."""

    def __init__(self, width, kernel):
        super().__init__()
        self.conv = MutableConv2d(width, width, kernel, padding=kernel // 2, bias=False)
        self.bn = MutableBatchNorm2d(width)

    def forward(self, x):
        return torch.relu(x + self.bn(self.conv(x)))


class DigitsValueSpace(ModelSpace):
    """A value-choice space for 8x8 digits: a width shared by every layer, twice that width through an expression,
    a kernel size per block and a depth: 3 * (3 + 9 + 27) = 117 architectures, each cheap to train alone.

    Stem (3x3 conv to ``width``, BN, ReLU); ``depth`` residual blocks (``kernel{i}`` x ``kernel{i}`` conv at
    ``width``); a 1x1 conv to ``width * 2``, BN, ReLU; global average pooling; a linear head. Labels: ``width``
    (8, 16, 24), ``depth`` (1, 2, 3), ``kernel0`` to ``kernel2`` (1, 3, 5; ``kernel{i}`` is used only when
    ``depth > i``). FLOPs span about two orders of magnitude.
    """

    def __init__(self):
        super().__init__()
        width = nni.choice('width', list(VALUE_WIDTHS))
        self.stem = nn.Sequential(MutableConv2d(1, width, 3, padding=1, bias=False), MutableBatchNorm2d(width),
                                  nn.ReLU())
        self.blocks = Repeat(lambda i: _ValueBlock(width, nni.choice(f'kernel{i}', list(VALUE_KERNELS))),
                             nni.choice('depth', list(VALUE_DEPTHS)))
        self.expand = nn.Sequential(MutableConv2d(width, width * 2, 1, bias=False), MutableBatchNorm2d(width * 2),
                                    nn.ReLU())
        self.head = MutableLinear(width * 2, 10)

    def forward(self, x):
        return self.head(self.expand(self.blocks(self.stem(x))).mean((2, 3)))

    @staticmethod
    def canonical(arch: dict) -> dict:
        """``arch`` without the kernel sizes of blocks its depth leaves out (they do not change the network)."""
        return {label: value for label, value in arch.items()
                if not (label.startswith('kernel') and int(label[len('kernel'):]) >= arch['depth'])}

    @classmethod
    def architectures(cls) -> list[dict]:
        """Every distinct architecture, in canonical form (117)."""
        unique = {tuple(sorted(cls.canonical(arch).items())): cls.canonical(arch) for arch in all_samples(cls())}
        return list(unique.values())
