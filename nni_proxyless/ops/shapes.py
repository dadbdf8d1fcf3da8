"""A one-time check, on the first batch, that every mixed op's candidates give outputs of one shape.

Binary gates compare candidates' outputs (``<dL/dy, o_k>``), so candidates of a choice must agree on their
output shape. The check runs each candidate once on the op's first input, in eval mode without gradients,
and names the label and the shapes when they differ, before any training happens. The first input of an op is
normally the one the check of the space (:mod:`.space_check`) gives it, on the first batch's first sample. Cells that
share their labels (an NDS space's normal cells) are copies of one cell: the first of them is checked.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import MixedOp, SpaceError
from .cell import MixedCell

__all__ = ['check_shapes_on_first_batch']


def check_shapes_on_first_batch(ops: list[MixedOp]) -> None:
    """Install the check as a forward pre-hook on each op; each hook removes itself after one call."""
    checked_cells = set()
    for op in ops:
        if isinstance(op, MixedCell):
            if op.labels in checked_cells:
                continue
            checked_cells.add(op.labels)
        _install(op)


def _install(op: MixedOp) -> None:
    def check(module: MixedOp, args: tuple, kwargs: dict) -> None:
        handle.remove()
        shapes = _shapes(module, args, kwargs)
        if len(set(shapes.values())) > 1:
            shown = ', '.join(f'{value!r}: {shape}' for value, shape in shapes.items())
            raise SpaceError(f'Choice {", ".join(map(repr, module.labels))}: candidates give outputs of different '
                             f'shapes ({shown}); binary gates need every candidate of a choice to output the same '
                             'shape.')

    handle = op.register_forward_pre_hook(check, with_kwargs=True)


def _shapes(op: MixedOp, args: tuple, kwargs: dict) -> dict[Any, tuple]:
    was_training = op.training
    op.eval()
    try:
        with torch.no_grad():
            return {value: _shape(output) for value, output in op.candidate_outputs(*args, **kwargs)}
    finally:
        op.train(was_training)


def _shape(output: Any) -> tuple:
    if isinstance(output, (tuple, list)):
        return tuple(_shape(item) for item in output)
    return tuple(output.shape) if isinstance(output, torch.Tensor) else (type(output).__name__,)
