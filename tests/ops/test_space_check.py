"""The first-batch check of the space: widths that do not line up and values that cannot run are refused, naming
the layers, the arguments, the labels and the shapes; consistent spaces pass."""

from __future__ import annotations

import itertools

import nni
import pytest
import torch
import torch.nn.functional as F

from nni.nas.nn.pytorch import ModelSpace, MutableLinear
from nni_proxyless import Proxyless
from nni_proxyless.arch import ArchParameters
from nni_proxyless.ops import SpaceError, check_space
from nni_proxyless.supernet import build_supernet

from conftest import StrideSpace, digits_evaluator, run_search


def _checked(space: ModelSpace, x: torch.Tensor) -> None:
    arch = ArchParameters(seed=0)
    check_space(build_supernet(space, arch), arch.routing, (x,), {}, 'The input')


class TwoLabels(ModelSpace):
    """The producer's width is label 'a', the consumer reads label 'c': they differ at a=64, c=32."""

    def __init__(self):
        super().__init__()
        self.fc1 = MutableLinear(16, nni.choice('a', [32, 64]))
        self.fc2 = MutableLinear(nni.choice('c', [32, 64]), 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_widths_of_two_labels_are_refused_naming_both_layers_and_labels():
    """The first architecture whose widths differ is named with both layers and both labels; NNI's own freeze
    fails on exactly that architecture."""
    with pytest.raises(SpaceError) as caught:
        _checked(TwoLabels(), torch.randn(1, 16))
    message = str(caught.value)
    assert "MutableLinear at 'fc2' reads in_features=32, label 'c'" in message
    assert "given by MutableLinear at 'fc1' (out_features=64, label 'a')" in message
    assert 'at a=64, c=32' in message
    with pytest.raises(RuntimeError, match='cannot be multiplied'):
        TwoLabels().freeze({'a': 64, 'c': 32})(torch.randn(1, 16))
    TwoLabels().freeze({'a': 32, 'c': 32})(torch.randn(1, 16))  # the first values agree


class Digits(TwoLabels):
    """:class:`TwoLabels` on 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.fc1 = MutableLinear(64, nni.choice('a', [32, 64]))

    def forward(self, x):
        return super().forward(x.flatten(1))


def test_widths_that_differ_stop_the_search_before_training(tmp_path):
    """Through a search: the first batch raises before any backward pass (no weight has a gradient)."""
    space = Digits()
    with pytest.raises(SpaceError, match=r"fc2.*label 'c'.*fc1.*label 'a'"):
        run_search(space, Proxyless(seed=0), digits_evaluator(), tmp_path)
    assert [p.grad for p in space.parameters()] == [None] * len(list(space.parameters()))


class SharedLabel(ModelSpace):
    """One label sizes both layers, written as two different but equal expressions (w * 2 and w + w)."""

    def __init__(self):
        super().__init__()
        w = nni.choice('w', [8, 16])
        self.fc1 = MutableLinear(16, w * 2)
        self.fc2 = MutableLinear(w + w, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_widths_equal_for_every_value_are_accepted():
    """Expressions that are equal at every value pass, and every architecture of the space then runs in NNI."""
    _checked(SharedLabel(), torch.randn(1, 16))
    for w in (8, 16):
        assert SharedLabel().freeze({'w': w})(torch.randn(1, 16)).shape == (1, 10)


class Joint(ModelSpace):
    """Widths of two labels that agree whenever one label is at its first value or both are equal, not at a=2, b=3."""

    def __init__(self):
        super().__init__()
        a, b = nni.choice('a', [1, 2, 3]), nni.choice('b', [1, 2, 3])
        self.fc1 = MutableLinear(4, a * b)
        self.fc2 = MutableLinear(a * b + (a - 1) * (b - 1) * (a - b), 2)

    def forward(self, x):
        return self.fc2(self.fc1(x))


def test_widths_are_compared_at_every_combination_of_their_labels():
    """The runs move one label at a time; the expressions are still compared at every combination, and the first
    one where they differ (by brute force over the values) is named."""
    differ = [(a, b) for a, b in itertools.product((1, 2, 3), repeat=2)
              if a * b != a * b + (a - 1) * (b - 1) * (a - b)]
    with pytest.raises(SpaceError, match=rf'at a={differ[0][0]}, b={differ[0][1]}\.'):
        _checked(Joint(), torch.randn(1, 4))


def test_a_value_that_cannot_run_is_refused_on_the_first_batch(tmp_path):
    """The search stops on its first batch, naming the module that failed, its input's shape (plain torch: stride 2
    gives 16 x 4 x 4 features), the label's value and the argument holding it; the original error is chained."""
    features = torch.flatten(F.conv2d(torch.zeros(1, 1, 8, 8), torch.zeros(16, 1, 3, 3), stride=2, padding=1), 1)
    with pytest.raises(SpaceError) as caught:
        run_search(StrideSpace(), Proxyless(seed=0), digits_evaluator(), tmp_path)
    message = str(caught.value)
    assert f"Linear at 'fc' failed on inputs of shape {tuple(features.shape)}" in message
    assert "at s=2" in message and "MutableConv2d at 'conv', argument 'stride'" in message
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_wrong_width_in_a_weight_step_raises_instead_of_padding():
    """Without the check, a sliced layer given another width than it reads raises (it used to pad or cut)."""
    net = build_supernet(TwoLabels(), ArchParameters(seed=0))
    with pytest.raises(SpaceError, match=r"MutableLinear at 'fc2': in_features=32 at c=32, but its input has shape "
                                         r'\(2, 64\)'):
        net.fc2(torch.randn(2, 64))
