"""Gradients of sliced max-size parameters: what autograd's own slicing gives, whatever else touches ``.grad``;
and what an optimiser with momentum and weight decay does to the unused channels.

The reference is plain torch: the same max-size tensors, sliced with ``weight[:w]`` in a hand-written forward.
"""

from __future__ import annotations

import nni
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableLinear
from nni_proxyless.arch import ArchParameters
from nni_proxyless.supernet import build_supernet

_WIDTHS = [4, 2, 6, 3, 6, 2]


class Two(ModelSpace):
    """``Linear(5, w) -> ReLU -> Linear(w, 3)`` with ``w`` a choice."""

    def __init__(self):
        super().__init__()
        width = nni.choice('w', [2, 3, 4, 6])
        self.first, self.second = MutableLinear(5, width), MutableLinear(width, 3)

    def forward(self, x):
        return self.second(torch.relu(self.first(x)))


def _ours():
    """The supernet, a forward at width ``w``, and its max-size parameters (:func:`_parameters`)."""
    torch.manual_seed(0)
    arch = ArchParameters(seed=0)
    net = build_supernet(Two(), arch)

    def forward(x, width):
        arch.routing.set(arch.selections_for({'w': width}))
        return net(x)
    return net, forward, _parameters(net)


def _parameters(net) -> list[torch.Tensor]:
    """The max-size parameters: first weight and bias, second weight and bias."""
    return [net.first.layer.weight, net.first.layer.bias, net.second.layer.weight, net.second.layer.bias]


def _plain(ours: list[torch.Tensor]):
    """Copies of ``ours`` and the same network written with plain slices of them."""
    params = [torch.nn.Parameter(p.detach().clone()) for p in ours]

    def forward(x, width):
        w1, b1, w2, b2 = params
        return F.linear(torch.relu(F.linear(x, w1[:width], b1[:width])), w2[:, :width], b2)
    return params, forward


def _inputs(step: int, dtype=torch.float32, device='cpu') -> torch.Tensor:
    return torch.randn(4, 5, generator=torch.Generator().manual_seed(step)).to(device, dtype)


def _train(forward, params: list[torch.Tensor], steps: int, l2: float, first: int = 0) -> None:
    """SGD with momentum, each step at the next width; the loss adds ``l2`` times the squares of every parameter
    (a term that writes the whole ``.grad``); ``zero_grad(set_to_none=True)`` as Lightning does."""
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    for step in range(first, first + steps):
        y = forward(_inputs(step, params[0].dtype, params[0].device), _WIDTHS[step % len(_WIDTHS)])
        loss = (y * y).mean() + l2 * sum((p * p).sum() for p in params)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def test_terms_over_all_parameters_leave_no_stale_gradient():
    """An L2 term over every parameter adds to the full ``.grad``; each step's weights equal plain slicing's."""
    net, forward, ours = _ours()
    params, plain = _plain(ours)
    for step in range(len(_WIDTHS)):
        _train(forward, ours, 1, l2=0.05, first=step)
        _train(plain, params, 1, l2=0.05, first=step)
        for a, b in zip(ours, params):
            torch.testing.assert_close(a.detach(), b.detach())


def test_tied_weight_gets_both_uses():
    """A weight used sliced by the supernet and whole by another term gets the sum of both gradients."""
    net, forward, ours = _ours()
    params, plain = _plain(ours)
    x, tied = _inputs(0), _inputs(1)[:, :5]
    for run, weight in ((forward, ours[0]), (plain, params[0])):
        (run(x, 2).sum() + (tied @ weight.t()).pow(2).sum()).backward()
    torch.testing.assert_close(ours[0].grad, params[0].grad)
    assert ours[0].grad[2:].abs().sum() > 0  # rows only the whole-weight term uses


@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16])
def test_dtype_change_after_steps(dtype):
    """Steps, then ``.to(dtype)``, then more steps: the gradients come in the new dtype and equal plain slicing's."""
    net, forward, ours = _ours()
    params, plain = _plain(ours)
    _train(forward, ours, 2, l2=0.0)
    _train(plain, params, 2, l2=0.0)
    net.to(dtype)
    params[:] = [torch.nn.Parameter(p.detach().to(dtype)) for p in params]  # plain's forward reads this list
    for run in (forward, plain):
        run(_inputs(2, dtype), 3).pow(2).sum().backward()
    for a, b in zip(_parameters(net), params):
        assert a.grad.dtype == dtype
        torch.testing.assert_close(a.grad, b.grad)


def test_device_change_after_steps():
    """Steps, then ``.to(device)``: the next gradients live on the new device (``meta``: shapes without data;
    a GPU where there is one) and equal plain slicing's there."""
    net, forward, ours = _ours()
    params, plain = _plain(ours)
    _train(forward, ours, 2, l2=0.0)
    _train(plain, params, 2, l2=0.0)
    for device in (['cuda'] if torch.cuda.is_available() else []) + ['meta']:
        net.to(device)
        params[:] = [torch.nn.Parameter(p.detach().to(device)) for p in params]
        for run in (forward, plain):
            run(_inputs(2, device=device), 3).pow(2).sum().backward()
        for a, b in zip(_parameters(net), params):
            assert a.grad.device.type == device and a.grad.shape == b.grad.shape
            if device != 'meta':
                torch.testing.assert_close(a.grad, b.grad)


def test_autograd_grad_returns_the_full_gradient():
    """``torch.autograd.grad(loss, [weight])`` returns the max-size gradient (zeros outside the slice), as plain
    slicing does, and writes nothing into ``.grad``."""
    net, forward, ours = _ours()
    params, plain = _plain(ours)
    (a,) = torch.autograd.grad(forward(_inputs(0), 2).pow(2).sum(), [ours[0]])
    (b,) = torch.autograd.grad(plain(_inputs(0), 2).pow(2).sum(), [params[0]])
    torch.testing.assert_close(a, b)
    assert ours[0].grad is None and a[2:].abs().sum() == 0


def test_post_accumulate_grad_hooks_fire():
    """A post-accumulate-grad hook on a sliced parameter fires once per backward, as with plain slicing, and sees
    the accumulated gradient."""
    net, forward, ours = _ours()
    params, plain = _plain(ours)
    seen: dict[str, list[torch.Tensor]] = {'ours': [], 'plain': []}
    ours[2].register_post_accumulate_grad_hook(lambda p: seen['ours'].append(p.grad.clone()))
    params[2].register_post_accumulate_grad_hook(lambda p: seen['plain'].append(p.grad.clone()))
    for width in (4, 2):
        forward(_inputs(width), width).pow(2).sum().backward()
        plain(_inputs(width), width).pow(2).sum().backward()
    assert len(seen['ours']) == len(seen['plain']) == 2
    for a, b in zip(seen['ours'], seen['plain']):
        torch.testing.assert_close(a, b)


class ChoiceAndWidth(ModelSpace):
    """A ``LayerChoice`` of two linear layers, then a linear layer whose width is a choice."""

    def __init__(self):
        super().__init__()
        self.choice = LayerChoice([nn.Linear(5, 5), nn.Linear(5, 5)], label='op')
        self.sliced = MutableLinear(5, nni.choice('w', [2, 6]))

    def forward(self, x):
        return self.sliced(self.choice(x))


def test_adamw_leaves_unused_candidates_alone_and_moves_unused_channels():
    """Under AdamW (momentum and weight decay), an unsampled LayerChoice candidate (no gradient) does not move;
    the unused channels of a sliced weight (zero gradient) take AdamW's step on a zero gradient, by hand:
    ``p * (1 - lr * wd) - lr * m_hat / (sqrt(v_hat) + eps)`` with ``m = beta1 * m1``, ``v = beta2 * v1``."""
    torch.manual_seed(0)
    arch = ArchParameters(seed=0)
    net = build_supernet(ChoiceAndWidth(), arch)
    lr, wd, (beta1, beta2), eps = 0.01, 0.1, (0.9, 0.999), 1e-8
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd)
    weight, unsampled = net.sliced.layer.weight, net.choice.candidates[1].weight
    grads, kept = [], unsampled.detach().clone()
    for step, width in enumerate((6, 2)):
        arch.routing.set(arch.selections_for({'op': 0, 'w': width}))
        before = weight.detach().clone()
        net(_inputs(step)).pow(2).sum().backward()
        grads.append(weight.grad.clone())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    assert torch.equal(unsampled.detach(), kept)
    assert grads[1][2:].abs().sum() == 0
    g1 = grads[0][2:]
    m, v = (1 - beta1) * g1 * beta1, (1 - beta2) * g1 ** 2 * beta2
    expected = before[2:] * (1 - lr * wd) - lr * (m / (1 - beta1 ** 2)) / ((v / (1 - beta2 ** 2)).sqrt() + eps)
    torch.testing.assert_close(weight.detach()[2:], expected)
    assert (weight.detach()[2:] - before[2:]).abs().max() > lr / 2  # momentum carries a step of about lr
