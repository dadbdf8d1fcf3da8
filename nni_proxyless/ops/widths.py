"""Which width labels an architecture step may widen: a one-time check on the first batch.

Architecture steps run the layers a width label sizes at the widest gated value and let each consumer take the
prefix of its input (see :mod:`.sliced`). That is exact when the channels of a narrower width are the first
channels of the wider tensor. A space that concatenates two tensors sized by one label along the channels (NDS
cells concatenate their nodes; ``FactorizedReduce`` concatenates two halves) breaks that layout: the prefix of the
wide concatenation is not the narrow concatenation. For such labels the architecture step keeps the exact width
(consumers see zeros past it), so that it always computes the sampled architecture's own output. So do the labels
that size the input of a fallback op (found by :mod:`.space_check`, which runs first): its candidates run on their
real input, which a widened producer would make wider than they take.

The check runs the supernet twice per suspect label on the first batch, in eval mode without gradients: once at
the label's first value, once widened to its largest value with the first one active; a label whose widened output
differs is kept exact. All labels are first tried together, so a space where widening is exact costs two forwards.
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any

import torch
from torch import nn

from ..routing import Routing, Selection
from .fallback import CombinationChoice
from .sliced import SlicedOp

__all__ = ['check_widening_on_first_batch']

_logger = logging.getLogger('nni.proxyless')


def check_widening_on_first_batch(model: nn.Module, routing: Routing) -> None:
    """Install the check as a forward pre-hook on ``model``; it removes itself after the first call."""
    labels = sorted({label for op in model.modules() if isinstance(op, SlicedOp) for label in op.width_labels()})
    if not labels and not any(isinstance(op, CombinationChoice) for op in model.modules()):
        return

    def check(module: nn.Module, args: tuple, kwargs: dict) -> None:
        handle.remove()
        fallback_inputs = {label for op in module.modules() if isinstance(op, CombinationChoice)
                           for label in op.input_labels}
        routing.exact_widths = set(fallback_inputs)
        suspects = [label for label in labels if label not in fallback_inputs]
        breaking = _layout_breaking(module, routing, suspects, args, kwargs) if suspects else set()
        routing.exact_widths |= breaking
        if breaking:
            _logger.info('Width labels %s size tensors that the space concatenates along the channels: '
                         'architecture steps keep them at their exact width.', sorted(breaking))
        if fallback_inputs:
            _logger.info('Labels %s size the input of a module searched as separate candidates (no slicing rule): '
                         'architecture steps keep them at their exact width.', sorted(fallback_inputs))

    handle = model.register_forward_pre_hook(check, with_kwargs=True)


def _layout_breaking(model: nn.Module, routing: Routing, labels: list[str], args: tuple, kwargs: dict) -> set[str]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if _agrees(model, routing, labels, args, kwargs):
                return set()
            return {label for label in labels if not _agrees(model, routing, [label], args, kwargs)}
    finally:
        model.train(was_training)


def _agrees(model: nn.Module, routing: Routing, labels: list[str], args: tuple, kwargs: dict) -> bool:
    """Whether widening ``labels`` (first value active, all values gated, no logits: so no gate) leaves the
    output unchanged."""
    base = {label: Selection(active=(0,)) for label in routing.choices}
    wide = dict(base)
    for label in labels:
        everything = tuple(range(len(routing.choices[label].values)))
        wide[label] = Selection(active=(0,), gated=everything, support=everything)
    with routing.use(base):
        exact = model(*args, **kwargs)
    with routing.use(wide):
        widened = model(*args, **kwargs)
    return _close(exact, widened)


def _close(a: Any, b: Any) -> bool:
    """Whether two outputs agree: tensors and real numbers to a tolerance, dicts key by key, tuples and lists
    element-wise, anything else by ``==`` (an undecidable comparison counts as a difference: the width stays
    exact)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape \
            and torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5)
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() \
            and all(_close(a[key], b[key]) for key in a)
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b) \
            and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):  # e.g. arrays, whose == is element-wise
        return False
