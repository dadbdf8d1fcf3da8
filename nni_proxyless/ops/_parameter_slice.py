"""Slices of max-size parameters whose gradient is written into the slice alone.

Slicing a parameter the usual way (``weight[:16]``) makes autograd allocate a zero gradient of the parameter's
full size at every weight step and copy the slice's gradient into it (``SliceBackward``): a memset of every
max-size weight per step, most of what a step allocates besides activations. :func:`parameter_slice` instead
keeps one gradient tensor per parameter, allocated at its first step, and each backward adds the slice's gradient
into that slice only. When the optimiser has reset ``.grad`` to ``None`` (``zero_grad(set_to_none=True)``, what
Lightning does), the tensor is put back after zeroing only the slices written since. ``.grad`` is the same
full-size gradient as before (zeros outside the slices used), so optimisers, gradient clipping, gradient
accumulation and the mixed-precision scaler see no difference; the gradient stays allocated between steps, as the
optimiser's state does.

Where a gradient must reach autograd's own accumulation, the plain slice is used: under ``torch.distributed``
(DDP learns from it that a gradient is ready), and for tensors that are not leaves requiring grad. A gradient
asked for with ``torch.autograd.grad(loss, [parameter])`` instead of ``backward()`` does not come back through
this path (it lands in ``.grad``); the package never asks for one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ['parameter_slice']


class _Gradient:
    """A parameter's kept gradient, and the slices written into it since it was last zeroed."""

    __slots__ = ('tensor', 'written')

    def __init__(self, parameter: torch.Tensor):
        self.tensor, self.written = torch.zeros_like(parameter), []


_GRADIENTS = WeakIdKeyDictionary()
"""The kept gradient of each parameter sliced so far (gone with the parameter)."""


def parameter_slice(parameter: torch.Tensor | None, index: tuple[Any, ...]) -> torch.Tensor | None:
    """``parameter[index]`` (basic indexing: slices, ``...``); in backward its gradient goes into that slice of
    ``parameter.grad`` alone (see the module docstring). A missing parameter (``bias=False``) stays ``None``."""
    if parameter is None:
        return None
    if not (torch.is_grad_enabled() and parameter.requires_grad and parameter.is_leaf) or _distributed():
        return parameter[index]
    return _SliceIntoGradient.apply(parameter, index)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class _SliceIntoGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, parameter, index):  # noqa: D102
        ctx.parameter, ctx.index = parameter, index
        return parameter[index]

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        _add_into_slice(ctx.parameter, ctx.index, grad)
        return None, None


def _add_into_slice(parameter: torch.Tensor, index: tuple[Any, ...], grad: torch.Tensor) -> None:
    with torch.no_grad():
        kept = _GRADIENTS.get(parameter)
        if parameter.grad is None:
            if kept is None:
                kept = _GRADIENTS[parameter] = _Gradient(parameter)
            for written in kept.written:
                kept.tensor[written].zero_()
            kept.written.clear()
            parameter.grad = kept.tensor
        if kept is not None and parameter.grad is kept.tensor and index not in kept.written:
            kept.written.append(index)
        parameter.grad[index] += grad
