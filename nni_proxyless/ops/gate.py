"""Binary gates: the gradient ProxylessNAS takes through a sampled path to the architecture logits.

A mixed op's output is ``y = sum_k g_k * o_k`` with binary gates ``g`` (one for the active candidate). Only the
active candidate runs forward; in backward the gate gradient is ``dL/dg_k = <dL/dy, o_k>`` (an inner product
over the whole output), and the logits receive

    dL/da_m = sum_n dL/dg_n * w_n * (delta_mn - w_m)

where ``w`` is the selection's weights: the softmax over its support (the sampled pair in ``two`` mode, all
candidates in ``full_v2`` mode). Outputs of the gated candidates that did not run are computed inside backward,
without building a graph, so they cost one forward each and no weight gradient. The active output is kept for
backward; ops that can compute it again from their inputs (layers, sliced layers, cell slots, the fallback) pass
it on without a copy, so an architecture step holds each activation once, as plain training does. What the
candidates' outputs are computed from (the op's inputs) is saved for backward as autograd saves tensors: an input
changed in place after the forward raises autograd's own error ("modified by an inplace operation") in backward,
instead of giving a wrong gate gradient. Every mixed op, whatever it chooses (layers, inputs, depths, values of
layer arguments, cell inputs and operations), gates through :func:`gate`; a label used in several places gets the
sum of its gates' gradients.

Mixed precision: the other candidates run under the autocast state of the forward (rounded as the active
output was), the inner products are taken in float32, and so is everything from the gate gradients on (the
logits are float32 parameters). Under ``'16-mixed'`` the architecture loss is scaled by the trainer's gradient
scaler before this backward, so that small ``dL/dy`` do not underflow in float16 (see ``_precision.py``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
from torch.utils._pytree import tree_leaves

from ..routing import Selection

__all__ = ['gate', 'logit_grad_from_gates', 'tensors_in']


def logit_grad_from_gates(gate_grads: torch.Tensor, selection: Selection) -> torch.Tensor:
    """Map gate gradients (one per ``selection.gated``) to a gradient over all of the label's logits."""
    with torch.no_grad():
        w = selection.weights()
        dg = torch.zeros_like(w)
        for grad, candidate in zip(gate_grads, selection.gated):
            dg[candidate] += grad
        return w * (dg - (w * dg).sum())


def gate(output: Any, selection: Selection, active: int, output_of: Callable[[int], Any], label: str, *,
         inputs: Any, recomputes: bool = False) -> Any:
    """Return ``output`` unchanged; in backward, add the binary-gate gradient to ``selection.logits``.

    The gate keeps ``output`` for its backward. Layers after it may change what it returns in place
    (``ReLU(inplace=True)``), so by default it returns a copy. With ``recomputes=True`` (``output_of(active)``
    computes the output afresh from the op's inputs, as a layer or a sliced layer does) it returns ``output``
    itself, saving the copy's memory, and in the rare case that a later layer did change it in place, backward
    recomputes it with ``output_of(active)``.

    Args:
        output: the active candidate's output (``o_active``): a tensor, or a tuple or list of tensors (then the
            inner product runs over all of them).
        selection: the label's selection for this architecture step (its ``logits`` receive the gradient).
        active: index of the candidate that produced ``output``.
        output_of: computes ``o_k`` for another gated candidate ``k`` (called in backward, without a graph).
        label: named in errors.
        inputs: what ``output_of`` computes from (the op's inputs, or the stored outputs it continues from): its
            tensors, also inside tuples, lists and dicts, are saved for backward, where one changed in place since
            the forward raises autograd's error.
        recomputes: whether ``output_of(active)`` computes ``output`` again from intact inputs (not from stored
            outputs, as a ``Repeat``'s deeper blocks or an ``InputChoice`` do).
    """
    tensors = _tensors(output, label)
    assert selection.logits is not None
    gated = iter(_BinaryGate.apply(selection.logits, selection, active, lambda k: _tensors(output_of(k), label),
                                   label, recomputes, tensors_in(inputs), *tensors))
    if isinstance(output, torch.Tensor):
        return next(gated)
    return type(output)(next(gated) if isinstance(item, torch.Tensor) else item for item in output)


class _BinaryGate(torch.autograd.Function):
    """Identity on the outputs; backward also returns the logits' gradient from the gates."""

    @staticmethod
    def forward(ctx, logits, selection, active, output_of, label, recomputes, inputs, *outputs):  # noqa: D102
        ctx.selection, ctx.active, ctx.output_of, ctx.label = selection, active, output_of, label
        ctx.autocast = _autocast_of(outputs[0].device.type)
        if not recomputes:  # copies: layers after the gate may work in place (ReLU(inplace=True))
            ctx.save_for_backward(*outputs, *inputs)  # autograd checks in backward that none changed in place
            ctx.outputs = len(outputs)
            return tuple(output.clone() for output in outputs)
        ctx.save_for_backward(*inputs)
        ctx.outputs = 0
        # the same memory (a detached alias shares the version counter, so a change in place shows in backward)
        ctx.kept = [(output.detach(), output._version) for output in outputs]
        return tuple(output.detach() for output in outputs)

    @staticmethod
    def backward(ctx, *grad_outputs):  # noqa: D102
        with torch.no_grad():
            outputs = _kept_outputs(ctx)
            gate_grads = torch.stack([_inner(grad_outputs, _candidate_outputs(ctx, k, outputs))
                                      for k in ctx.selection.gated])
            grad_logits = logit_grad_from_gates(gate_grads, ctx.selection)
        return (grad_logits, None, None, None, None, None, None, *grad_outputs)


def _kept_outputs(ctx) -> tuple:
    """The active output as forward produced it: saved, kept (unchanged since), or computed again from the saved
    inputs (unpacking them raises autograd's error if one was changed in place)."""
    saved = ctx.saved_tensors
    if ctx.outputs:
        return saved[:ctx.outputs]
    kept, ctx.kept = ctx.kept, None  # a second backward (retain_graph) computes it again
    if kept is not None and all(output._version == version for output, version in kept):
        return tuple(output for output, _ in kept)
    with ctx.autocast():
        return ctx.output_of(ctx.active)


def _inner(grads: tuple, outputs: tuple) -> torch.Tensor:
    """``<dL/dy, o>`` over every tensor of the output, in float32 (small gate gradients do not underflow)."""
    return sum(torch.sum(g.float() * o.float()) for g, o in zip(grads, outputs) if g is not None)


def _autocast_of(device_type: str) -> Callable[[], Any]:
    """A context that restores the autocast state now in force for ``device_type`` (as ``torch.amp.custom_bwd``
    does for a whole backward)."""
    if not torch.amp.is_autocast_available(device_type):
        return contextlib.nullcontext
    enabled, dtype = torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    return lambda: torch.autocast(device_type, dtype=dtype, enabled=enabled)


def tensors_in(values: Any) -> tuple[torch.Tensor, ...]:
    """The tensors in ``values``, also inside (nested) tuples, lists and dicts."""
    return tuple(leaf for leaf in tree_leaves(values) if isinstance(leaf, torch.Tensor))


def _tensors(output: Any, label: str) -> tuple[torch.Tensor, ...]:
    """The tensors of an output: itself, or the tensors of a tuple or list (``None`` entries pass ungated)."""
    if isinstance(output, torch.Tensor):
        return (output,)
    if isinstance(output, (tuple, list)) and all(isinstance(t, torch.Tensor) or t is None for t in output) \
            and any(isinstance(t, torch.Tensor) for t in output):
        return tuple(t for t in output if t is not None)
    raise TypeError(f'Choice {label!r}: candidates must return a tensor (or a tuple of tensors) to be searched '
                    f'with binary gates, got {type(output).__name__}.')


def _candidate_outputs(ctx, k: int, outputs: tuple) -> tuple:
    if k == ctx.active:
        return outputs
    with ctx.autocast():
        others = ctx.output_of(k)
    shapes = [tuple(o.shape) for o in outputs]
    if [tuple(o.shape) for o in others] != shapes:
        raise ValueError(f'Choice {ctx.label!r}: candidate {k} outputs {", ".join(str(tuple(o.shape)) for o in others)}'
                         f' but candidate {ctx.active} outputs {", ".join(map(str, shapes))}; binary gates need '
                         'candidates with equal output shapes.')
    return others
