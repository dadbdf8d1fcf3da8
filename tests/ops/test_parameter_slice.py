"""Slices whose gradient goes into the slice alone: the same training as plain slicing, without full-size copies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nni_proxyless.ops._parameter_slice import parameter_slice

_WIDTHS = [4, 2, 6, 3, 6, 1]


def _train(slicing, weight: torch.nn.Parameter, accumulate: int, set_to_none: bool) -> list[torch.Tensor]:
    """SGD with momentum and weight decay over steps that each use a different slice; the weights after each."""
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9, weight_decay=1e-2)
    x, seen = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(0)), []
    for step, width in enumerate(_WIDTHS):
        index = (slice(width), slice(3), slice(1, 2), slice(None))  # output prefix, input prefix, kernel row
        y = F.conv2d(x[:, :3], slicing(weight, index), padding=(0, 1))
        ((y * y).sum() / accumulate).backward()
        if (step + 1) % accumulate == 0:
            optimizer.step()
            optimizer.zero_grad(set_to_none=set_to_none)
        seen.append(weight.detach().clone())
    return seen


@pytest.mark.parametrize('accumulate', [1, 2])
@pytest.mark.parametrize('set_to_none', [True, False])
def test_training_equals_plain_slicing(accumulate, set_to_none):
    """Every step's weights equal those of autograd's own slicing (optimiser state, accumulation, zero_grad)."""
    start = torch.randn(6, 5, 3, 3, generator=torch.Generator().manual_seed(1))
    ours = _train(parameter_slice, torch.nn.Parameter(start.clone()), accumulate, set_to_none)
    plain = _train(lambda w, index: w[index], torch.nn.Parameter(start.clone()), accumulate, set_to_none)
    for a, b in zip(ours, plain):
        assert torch.allclose(a, b, atol=1e-6)


def test_gradient_outside_the_slices_is_zero_and_kept_between_steps():
    """The full-size gradient is allocated once; a step writes and later clears only the slices it used."""
    weight = torch.nn.Parameter(torch.ones(8, 3))
    parameter_slice(weight, (slice(6),)).sum().backward()
    kept = weight.grad
    assert kept[:6].eq(1).all() and kept[6:].eq(0).all()
    weight.grad = None  # what zero_grad(set_to_none=True) does
    (2 * parameter_slice(weight, (slice(2),))).sum().backward()
    assert weight.grad is kept
    assert kept[:2].eq(2).all() and kept[2:].eq(0).all()


def test_tensors_outside_training_are_plain_slices():
    """No gradient wanted (no_grad, frozen parameters, non-leaves): the plain view of the slice; no parameter:
    ``None``."""
    weight = torch.nn.Parameter(torch.randn(5, 3))
    with torch.no_grad():
        assert parameter_slice(weight, (slice(2),))._base is weight
    frozen = torch.randn(5, 3)
    assert parameter_slice(frozen, (slice(2),))._base is frozen
    assert parameter_slice(weight * 2, (slice(2),)).grad_fn.name() == 'SliceBackward0'
    assert parameter_slice(None, (slice(2),)) is None  # a layer built with bias=False
