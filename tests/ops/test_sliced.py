"""Layers whose arguments are choices: gate gradients against explicit outputs at each value, slices only."""

from __future__ import annotations

import random

import nni
import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian
from torch.utils.flop_counter import FlopCounterMode

from nni.nas.nn.pytorch import ModelSpace, MutableConv2d, MutableLinear
from nni_proxyless.arch import ArchParameters
from nni_proxyless.ops.sliced_layers import trim_to_input
from nni_proxyless.ops.subnet import subnet_of
from nni_proxyless.routing import Selection
from nni_proxyless.supernet import build_supernet


def _supernet(space: ModelSpace, seed: int = 3) -> tuple[ModelSpace, ArchParameters]:
    arch = ArchParameters(seed=0)
    net = build_supernet(space, arch)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for label in arch.labels():
            arch.logit(label).copy_(torch.randn(len(arch.choices[label].values), generator=gen))
    return net, arch


def _loss(y: torch.Tensor) -> torch.Tensor:
    target = torch.linspace(-1, 1, y.numel()).view_as(y)
    return (y * target).sum() + 0.1 * (y ** 2).sum()


def _logit_grad(arch: ArchParameters, label: str, support: tuple, gate_grads: dict) -> torch.Tensor:
    """sum_n dL/dg_n * dw_n/da with w = softmax over the support (autograd's Jacobian of softmax)."""
    logits = arch.logit(label).detach()
    jac = jacobian(lambda a: torch.softmax(a, -1), logits[list(support)])
    expected = torch.zeros_like(logits)
    for row, n in enumerate(support):
        expected[list(support)] += gate_grads.get(n, 0.0) * jac[row]
    return expected


def _gated(arch: ArchParameters, label: str, active: int, support: tuple, others: dict | None = None) -> dict:
    selections = {name: Selection(active=(others or {}).get(name, (0,))) for name in arch.labels()}
    selections[label] = Selection(active=(active,), gated=support, support=support, logits=arch.logit(label))
    return selections


class Kernel(ModelSpace):
    """One convolution whose kernel size is a choice (padding follows it)."""

    def __init__(self):
        super().__init__()
        k = nni.choice('k', [1, 3, 5])
        self.conv = MutableConv2d(3, 4, k, padding=k // 2)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize('active,support', [(1, (0, 1, 2)), (2, (0, 2)), (0, (0, 1))])
def test_kernel_gate_matches_explicit_outputs(active, support):
    """o_k is the convolution frozen at kernel k; dL/da equals sum_k <dL/dy, o_k> through softmax'."""
    torch.manual_seed(0)
    net, arch = _supernet(Kernel())
    x = torch.randn(2, 3, 6, 6)
    arch.routing.set(_gated(arch, 'k', active, support))
    (ours,) = torch.autograd.grad(_loss(net(x)), [arch.logit('k')])

    outputs = [subnet_of(net, {'k': v}).conv(x) for v in (1, 3, 5)]
    gates = torch.nn.functional.one_hot(torch.tensor(active), 3).float().requires_grad_()
    (gate_grads,) = torch.autograd.grad(_loss(sum(g * o for g, o in zip(gates, outputs))), [gates])
    torch.testing.assert_close(ours, _logit_grad(arch, 'k', support, dict(enumerate(gate_grads))))


class Widths(ModelSpace):
    """A producer of width ``w`` (no gate), a nonlinearity, a consumer of width ``w`` (gated on its input)."""

    def __init__(self, expression: bool = False):
        super().__init__()
        w = nni.choice('w', [1, 2, 3])
        hidden = w * 2 if expression else w
        self.produce = MutableLinear(5, hidden)
        self.consume = MutableLinear(hidden, 3)

    def forward(self, x):
        return self.consume(torch.tanh(self.produce(x)))


@pytest.mark.parametrize('expression', [False, True])
@pytest.mark.parametrize('active', [0, 2])
def test_width_gate_matches_prefix_outputs(active, expression):
    """Widths: the producer runs at the widest gated width; o_v is the consumer at width v on the prefix."""
    torch.manual_seed(0)
    net, arch = _supernet(Widths(expression))
    x = torch.randn(4, 5)
    support = (0, 1, 2)
    arch.routing.set(_gated(arch, 'w', active, support))
    y = net(x)
    (ours,) = torch.autograd.grad(_loss(y), [arch.logit('w')])

    widths = [v * 2 if expression else v for v in (1, 2, 3)]
    hidden = torch.tanh(subnet_of(net, {'w': 3}).produce(x))          # the widest gated width
    outputs = [subnet_of(net, {'w': v}).consume(hidden[:, :width]) for v, width in zip((1, 2, 3), widths)]
    torch.testing.assert_close(y, outputs[active])                      # forward: the active architecture
    gates = torch.nn.functional.one_hot(torch.tensor(active), 3).float().requires_grad_()
    (gate_grads,) = torch.autograd.grad(_loss(sum(g * o for g, o in zip(gates, outputs))), [gates])
    torch.testing.assert_close(ours, _logit_grad(arch, 'w', support, dict(enumerate(gate_grads))))


class SharedKernel(ModelSpace):
    """Two convolutions read one kernel-size label."""

    def __init__(self):
        super().__init__()
        k = nni.choice('k', [1, 3])
        self.first = MutableConv2d(2, 3, k, padding=k // 2)
        self.second = MutableConv2d(3, 2, k, padding=k // 2)

    def forward(self, x):
        return self.second(torch.tanh(self.first(x)))


def test_shared_label_gate_sums_every_use():
    """One gate variable shared by both layers: dL/dg_k = sum over uses, the label's one logit gets it."""
    torch.manual_seed(0)
    net, arch = _supernet(SharedKernel())
    x = torch.randn(2, 2, 5, 5)
    arch.routing.set(_gated(arch, 'k', 1, (0, 1)))
    (ours,) = torch.autograd.grad(_loss(net(x)), [arch.logit('k')])

    small, large = subnet_of(net, {'k': 1}), subnet_of(net, {'k': 3})
    gates = torch.tensor([0.0, 1.0], requires_grad=True)
    h = gates[0] * small.first(x) + gates[1] * large.first(x)
    y = gates[0] * small.second(torch.tanh(h)) + gates[1] * large.second(torch.tanh(h))
    (gate_grads,) = torch.autograd.grad(_loss(y), [gates])
    torch.testing.assert_close(ours, _logit_grad(arch, 'k', (0, 1), dict(enumerate(gate_grads))))


class Wide(ModelSpace):
    def __init__(self):
        super().__init__()
        w = nni.choice('w', [4, 16, 64])
        self.first = MutableConv2d(3, w, 3, padding=1)
        k = nni.choice('k', [1, 3])
        self.second = MutableConv2d(w, 8, k, padding=k // 2)

    def forward(self, x):
        return self.second(torch.relu(self.first(x)))


def test_weight_step_costs_the_subnet_and_trains_only_its_slice():
    """A weight step does the frozen subnet's FLOPs, and only the sampled slice gets weight gradients."""
    net, arch = _supernet(Wide())
    x = torch.randn(2, 3, 8, 8)
    sample = {'w': 16, 'k': 3}
    arch.routing.set(arch.selections_for(sample))
    with FlopCounterMode(display=False) as ours:
        net(x).sum().backward()
    with FlopCounterMode(display=False) as alone:
        subnet_of(net, sample)(x).sum().backward()
    assert ours.get_total_flops() == alone.get_total_flops()
    grad = net.second.layer.weight.grad
    assert grad[:, :16].abs().sum() > 0 and grad[:, 16:].abs().sum() == 0
    assert net.first.layer.weight.grad[16:].abs().sum() == 0


@pytest.mark.parametrize('dims', [1, 2, 3])
def test_trimmed_kernel_gives_the_same_output_and_gradient(dims):
    """Kernel taps that meet only padding are dropped; output and weight gradient equal the full kernel's."""
    rng, convolution = random.Random(dims), {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    trimmed = 0
    for _ in range(300):
        k, s, d, p = rng.choice([1, 3, 5, 7]), rng.choice([1, 2, 3]), rng.choice([1, 2, 3]), rng.randint(0, 6)
        sizes = [rng.randint(1, 7) for _ in range(dims)]
        if any(size + 2 * p - d * (k - 1) - 1 < 0 for size in sizes):
            continue
        x, w = torch.randn(2, 3, *sizes), torch.randn(4, 3, *[k] * dims, requires_grad=True)
        full = convolution(x, w, None, s, p, d)
        grad_full, = torch.autograd.grad((full * full.detach()).sum(), w)
        kernel, padding = trim_to_input(w, sizes, s, p, d)
        cut = convolution(x, kernel, None, s, padding, d)
        grad_cut, = torch.autograd.grad((cut * full.detach()).sum(), w)
        assert cut.shape == full.shape and torch.allclose(cut, full, atol=1e-5)
        assert torch.allclose(grad_cut, grad_full, atol=1e-4)
        trimmed += kernel.shape != w.shape
    assert trimmed > 20  # the cases above include small maps


def test_large_kernel_on_a_one_pixel_map_runs_its_centre_tap():
    """A sliced 7x7 depthwise convolution on a 1x1 map does one multiply per channel (the centre tap)."""
    class Depthwise(ModelSpace):
        def __init__(self):
            super().__init__()
            k = nni.choice('k', [3, 7])
            self.conv = MutableConv2d(8, 8, k, padding=k // 2, groups=8, bias=False)

        def forward(self, x):
            return self.conv(x)

    net, arch = _supernet(Depthwise())
    arch.routing.set(arch.selections_for({'k': 7}))
    x = torch.randn(2, 8, 1, 1)
    with FlopCounterMode(display=False) as counted:
        y = net(x)
    assert counted.get_total_flops() == 2 * 2 * 8  # batch x channels multiply-adds
    assert torch.allclose(y, x * net.conv.layer.weight[:, :, 3:4, 3:4].reshape(1, 8, 1, 1))
