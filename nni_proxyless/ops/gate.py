"""Binary gates: the gradient ProxylessNAS takes through a sampled path to the architecture logits.

A mixed op's output is ``y = sum_k g_k * o_k`` with binary gates ``g`` (one for the active path). Only the
active path runs forward; in backward the gate gradient is ``dL/dg_k = <dL/dy, o_k>`` (an inner product over
the whole output), and the logits receive

    dL/da_m = sum_n dL/dg_n * w_n * (delta_mn - w_m)

where ``w`` is the softmax over the path's support (the sampled pair in ``two`` mode, all candidates in
``full_v2`` mode). Outputs of the gated candidates that did not run are computed inside backward, without
building a graph, so they cost one forward each and no weight gradient.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..arch import Path

__all__ = ['gate', 'logit_grad_from_gates']


def logit_grad_from_gates(gate_grads: torch.Tensor, path: Path) -> torch.Tensor:
    """Map gate gradients (one per ``path.gated``) to a gradient over all of the label's logits."""
    assert path.logits is not None
    logits = path.logits.detach()
    support = list(path.support)
    w = torch.softmax(logits[support], dim=-1)
    dg = torch.zeros_like(w)
    for grad, candidate in zip(gate_grads, path.gated):
        dg[support.index(candidate)] += grad
    grad_support = w * (dg - (w * dg).sum())
    grad_logits = torch.zeros_like(logits)
    grad_logits[support] = grad_support
    return grad_logits


def gate(output: torch.Tensor, path: Path, active: int, output_of: Callable[[int], torch.Tensor],
         label: str, gated: tuple[int, ...] | None = None) -> torch.Tensor:
    """Return ``output`` unchanged; in backward, add the binary-gate gradient to ``path.logits``.

    Args:
        output: the active candidate's output (``o_active``).
        path: the label's path for this architecture step (its ``logits`` receive the gradient).
        active: index of the candidate that produced ``output``.
        output_of: computes ``o_k`` for another gated candidate ``k`` (called in backward, without a graph).
        label: named in errors.
        gated: overrides ``path.gated`` (an ``InputChoice`` gates each chosen input on its own).
    """
    if not isinstance(output, torch.Tensor):
        raise TypeError(f'Choice {label!r}: candidates must return one tensor to be searched with binary gates, '
                        f'got {type(output).__name__}.')
    assert path.logits is not None
    gated_path = path if gated is None else Path(path.active, gated, path.support, path.logits)
    return _BinaryGate.apply(path.logits, output, gated_path, active, output_of, label)


class _BinaryGate(torch.autograd.Function):
    """Identity on ``output``; backward also returns the logits' gradient from the gates."""

    @staticmethod
    def forward(ctx, logits, output, path, active, output_of, label):  # noqa: D102
        ctx.path, ctx.active, ctx.output_of, ctx.label = path, active, output_of, label
        ctx.save_for_backward(output)
        return output.view_as(output)

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        (output,) = ctx.saved_tensors
        with torch.no_grad():
            gate_grads = torch.stack([
                torch.sum(grad_output * _candidate_output(ctx, k, output)) for k in ctx.path.gated])
            grad_logits = logit_grad_from_gates(gate_grads, ctx.path)
        return grad_logits, grad_output, None, None, None, None


def _candidate_output(ctx, k: int, output: torch.Tensor) -> torch.Tensor:
    if k == ctx.active:
        return output
    other = ctx.output_of(k)
    if not isinstance(other, torch.Tensor) or other.shape != output.shape:
        shape = tuple(other.shape) if isinstance(other, torch.Tensor) else type(other).__name__
        raise ValueError(f'Choice {ctx.label!r}: candidate {k} outputs {shape} but candidate {ctx.active} outputs '
                         f'{tuple(output.shape)}; binary gates need candidates with equal output shapes.')
    return other
