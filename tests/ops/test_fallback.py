"""The fallback for parametrized modules without a slicing rule: candidates on their real input, the limit."""

from __future__ import annotations

import itertools

import nni
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nni.nas.nn.pytorch import ModelSpace, MutableConv2d, ParametrizedModule
from nni_proxyless.arch import ArchParameters
from nni_proxyless.ops import FALLBACK_LIMIT, check_space_on_first_batch, check_widening_on_first_batch
from nni_proxyless.ops.subnet import subnet_of
from nni_proxyless.supernet import build_supernet

from test_sliced import _gated, _logit_grad, _loss, _supernet


class Scaled(ParametrizedModule):
    """A user's module with no slicing rule: a convolution scaled by a searched factor."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x) * self.factor


class ScaledSpace(ModelSpace):
    def __init__(self):
        super().__init__()
        self.scaled = Scaled(nni.choice('f', [0.5, 2.0]))

    def forward(self, x):
        return self.scaled(x)


def test_architecture_step_runs_candidates_on_their_real_input():
    """After a weight step on 8x8 inputs, an architecture step on 16x16 inputs gives the active candidate's output
    on the whole 16x16 input, and the gate gradient of each candidate's output on it."""
    torch.manual_seed(0)
    net, arch = _supernet(ScaledSpace())
    arch.routing.set(arch.selections_for({'f': 2.0}))
    net(torch.randn(2, 3, 8, 8))
    x = torch.randn(2, 3, 16, 16)
    arch.routing.set(_gated(arch, 'f', 0, (0, 1)))
    y = net(x)
    (ours,) = torch.autograd.grad(_loss(y), [arch.logit('f')])

    outputs = [subnet_of(net, {'f': f})(x) for f in (0.5, 2.0)]
    torch.testing.assert_close(y, outputs[0])
    gates = torch.tensor([1.0, 0.0], requires_grad=True)
    (gate_grads,) = torch.autograd.grad(_loss(sum(g * o for g, o in zip(gates, outputs))), [gates])
    torch.testing.assert_close(ours, _logit_grad(arch, 'f', (0, 1), dict(enumerate(gate_grads))))


class Expand(ParametrizedModule):
    """A user's module whose output width is searched."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 1)

    def forward(self, x):
        return self.conv(x)


class ExpandSpace(ModelSpace):
    def __init__(self):
        super().__init__()
        w = nni.choice('w', [4, 8])
        self.expand = Expand(w)
        self.consume = MutableConv2d(w, 2, 1)

    def forward(self, x):
        return self.consume(torch.relu(self.expand(x)))


@pytest.mark.parametrize('active', [0, 1])
def test_fallback_output_widths_are_zero_padded_like_sliced_widths(active):
    """An architecture step pads the fallback's output to the widest gated width, and the consumer reads its prefix
    at each value: with shared gates g, y_f = sum_k g_k pad(f_k(x)), y = sum_k g_k c_k(relu(y_f)[:, :w_k])."""
    torch.manual_seed(0)
    net, arch = _supernet(ExpandSpace())
    x = torch.randn(2, 3, 5, 5)
    arch.routing.set(_gated(arch, 'w', active, (0, 1)))
    y = net(x)
    (ours,) = torch.autograd.grad(_loss(y), [arch.logit('w')])

    subnets = [subnet_of(net, {'w': w}) for w in (4, 8)]
    gates = F.one_hot(torch.tensor(active), 2).float().requires_grad_()
    produced = sum(g * F.pad(s.expand(x), (0, 0, 0, 0, 0, 8 - w)) for g, s, w in zip(gates, subnets, (4, 8)))
    hidden = torch.relu(produced)
    explicit = sum(g * s.consume(hidden[:, :w]) for g, s, w in zip(gates, subnets, (4, 8)))
    torch.testing.assert_close(y, explicit)
    (gate_grads,) = torch.autograd.grad(_loss(explicit), [gates])
    torch.testing.assert_close(ours, _logit_grad(arch, 'w', (0, 1), dict(enumerate(gate_grads))))


class Norm(ParametrizedModule):
    """A user's module whose width is that of its input."""

    def __init__(self, channels):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x):
        return self.norm(x)


class NormSpace(ModelSpace):
    """NNI's one-shot unit-test space with a custom op: label 'w' sizes the fallback's input."""

    def __init__(self):
        super().__init__()
        w = nni.choice('w', [4, 8])
        self.first = MutableConv2d(3, w, 3, padding=1)
        self.norm = Norm(w)
        self.second = MutableConv2d(w, 2, 1)

    def forward(self, x):
        return self.second(torch.relu(self.norm(self.first(x))))


def test_a_label_sizing_the_fallback_input_is_kept_exact_and_not_gated_there():
    """The first batch finds that 'w' sizes the fallback's input, so architecture steps keep 'w' at its exact width:
    the fallback runs the active candidate on its real input, and only the second convolution gates 'w', on the
    prefix of the exact hidden tensor or with zeros past it."""
    torch.manual_seed(0)
    net, arch = _supernet(NormSpace())
    check_space_on_first_batch(net, arch.routing)
    check_widening_on_first_batch(net, arch.routing)
    net.eval()
    net(torch.randn(2, 3, 6, 6))
    assert net.norm.input_labels == {'w'} and arch.routing.exact_widths == {'w'}
    x = torch.randn(2, 3, 6, 6)
    for active in (0, 1):
        arch.routing.set(_gated(arch, 'w', active, (0, 1)))
        y = net(x)
        (ours,) = torch.autograd.grad(_loss(y), [arch.logit('w')])

        exact = subnet_of(net, {'w': (4, 8)[active]})
        hidden = torch.relu(exact.norm(exact.first(x)))
        outputs = [subnet_of(net, {'w': w}).second(F.pad(hidden, (0, 0, 0, 0, 0, w - hidden.shape[1]))
                                                      if w > hidden.shape[1] else hidden[:, :w]) for w in (4, 8)]
        torch.testing.assert_close(y, outputs[active])
        gates = F.one_hot(torch.tensor(active), 2).float().requires_grad_()
        (gate_grads,) = torch.autograd.grad(_loss(sum(g * o for g, o in zip(gates, outputs))), [gates])
        torch.testing.assert_close(ours, _logit_grad(arch, 'w', (0, 1), dict(enumerate(gate_grads))))


class Many(ParametrizedModule):
    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return x * self.a + self.b


class ManySpace(ModelSpace):
    def __init__(self, a_values, b_values):
        super().__init__()
        self.many = Many(nni.choice('a', a_values), nni.choice('b', b_values))

    def forward(self, x):
        return self.many(x)


def test_limit_error_gives_the_count_and_the_arguments():
    """Past the limit, the error gives the number of distinct modules (counted here by brute force) and names the
    arguments holding the choices; at the limit, the module is built."""
    a_values, b_values = list(range(1, 10)), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    count = len(set(itertools.product(a_values, b_values)))
    assert count > FALLBACK_LIMIT
    with pytest.raises(ValueError, match=rf"arguments 'a' \(label 'a'\) and 'b' \(label 'b'\) give {count} distinct "
                                         rf'modules, more than the limit of {FALLBACK_LIMIT}'):
        build_supernet(ManySpace(a_values, b_values), ArchParameters(seed=0))
    net = build_supernet(ManySpace(a_values[:8], b_values), ArchParameters(seed=0))
    assert len(net.many.candidates) == FALLBACK_LIMIT
