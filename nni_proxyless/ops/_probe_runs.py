"""What :mod:`.space_check` records while the supernet runs a sample: the modules running, the layers' outputs, and
the width each consuming layer receives against the width it declares.

Global forward hooks (installed only inside :class:`ProbeRecorder`) keep the stack of modules running, so that an
exception can be placed in the module it came from, and the output shape of every module that may give a width
(sliced layers, fallback ops, and plain layers with weights). A pre-hook on every sliced layer that reads an input
width compares it with the declared one, before that layer (or a first-batch check on it) runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from ..routing import Selection
from .fallback import CombinationChoice
from .sliced import SlicedOp

__all__ = ['ProbeRecorder', 'Run', 'Mismatch', 'Stop', 'shape_of', 'shapes_of']


@dataclass
class Mismatch:
    """A consuming layer whose input width differs from the width its arguments declare."""

    consumer: SlicedOp
    declared: int
    actual: int | None
    position: int
    """How many outputs were recorded in the run before the consumer was called."""
    ndim: int


@dataclass
class Run:
    """One forward of the supernet on one sample of the space."""

    selections: dict[str, Selection]
    label: str | None = None
    """The label this run moved off the base sample (``None``: the base, or every label at one position)."""
    text: str = ''
    outputs: list[tuple[int, tuple | None]] = field(default_factory=list)
    inputs: dict[int, tuple[int, int | None, int]] = field(default_factory=dict)
    """Consumer ``id`` -> (outputs recorded before its first call, its input width, its input's rank)."""
    fallbacks: dict[int, tuple[list, tuple | None]] = field(default_factory=dict)
    """Fallback op ``id`` -> (its input shapes, its output shape) at its first call."""
    mismatch: Mismatch | None = None


class Stop(Exception):
    """Ends a run at a consumer whose input width differs from its declared one (recorded in the run)."""


class ProbeRecorder:
    """Hooks that record :class:`Run` s of ``model`` (a context manager: the hooks live inside ``with``).

    Args:
        model: the supernet.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.names = {id(m): name for name, m in model.named_modules()}
        self.modules = {id(m): m for m in model.modules()}
        self.consumers = [m for m in model.modules() if isinstance(m, SlicedOp) and m.input_width_argument]
        self.fallbacks = {id(m) for m in model.modules() if isinstance(m, CombinationChoice)}
        self.producers = {id(m) for m in model.modules() if isinstance(m, (SlicedOp, CombinationChoice))
                          or (next(m.children(), None) is None and next(m.parameters(False), None) is not None)}
        self.runs: list[Run] = []
        self.running: list[tuple[nn.Module, list]] = []
        self._handles: list = []

    def __enter__(self) -> 'ProbeRecorder':
        self._handles = [register_module_forward_pre_hook(self._enter), register_module_forward_hook(self._leave)]
        self._handles += [m.register_forward_pre_hook(self._consume, with_kwargs=True, prepend=True)
                          for m in self.consumers]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()

    def start(self, run: Run) -> None:
        """Record the next forward as ``run``."""
        self.runs.append(run)
        self.running = []

    def describe(self, module: nn.Module) -> str:
        """A module as messages name it (a mixed op by its class and place in the space)."""
        where = getattr(module, 'where', None)
        if where is not None:
            return where
        name = self.names.get(id(module))
        if name == '':
            return f'the forward of {type(module).__name__}'
        return f'{type(module).__name__} at {name!r}' if name is not None else type(module).__name__

    # ------------------------------------------------------------------------------------------- hooks

    def _enter(self, module: nn.Module, args: tuple) -> None:
        self.running.append((module, shapes_of(args)))

    def _leave(self, module: nn.Module, args: tuple, output: Any) -> None:
        while self.running and self.running.pop()[0] is not module:
            pass  # a module whose exception was caught by its caller
        run = self.runs[-1] if self.runs else None
        if run is None:
            return
        if id(module) in self.producers:
            run.outputs.append((id(module), shape_of(output)))
        if id(module) in self.fallbacks:
            run.fallbacks.setdefault(id(module), (shapes_of(args), shape_of(output)))

    def _consume(self, op: SlicedOp, args: tuple, kwargs: dict) -> None:
        run = self.runs[-1]
        declared = op.arguments.at(op.routing)[op.input_width_argument]
        for x in op.input_tensors(args, kwargs):
            actual = x.shape[op.output_dim] if x.dim() else None
            run.inputs.setdefault(id(op), (len(run.outputs), actual, x.dim()))
            if actual != declared:
                run.mismatch = Mismatch(op, declared, actual, len(run.outputs), x.dim())
                raise Stop

    # ---------------------------------------------------------------------------------------- producer

    def producer(self, consumer: SlicedOp, run: Run, position: int, width: int | None, ndim: int
                 ) -> nn.Module | None:
        """The module that gives ``consumer`` its input: the last one before it (before ``position`` in ``run``'s
        outputs) whose output had the consumer's input width (``width``, along the consumer's dimension, at rank
        ``ndim``) there and in every other run that reached the consumer."""
        seen = {id(consumer)}
        for index in range(position - 1, -1, -1):
            candidate, shape = run.outputs[index]
            if candidate in seen:
                continue
            seen.add(candidate)
            if _gives(shape, consumer.output_dim, ndim, width) and \
                    all(self._gives_in(other, candidate, consumer) for other in self.runs if other is not run):
                return self.modules[candidate]
        return None

    def _gives_in(self, run: Run, candidate: int, consumer: SlicedOp) -> bool:
        if id(consumer) not in run.inputs:
            return True
        position, width, ndim = run.inputs[id(consumer)]
        for index in range(position - 1, -1, -1):
            if run.outputs[index][0] == candidate:
                return _gives(run.outputs[index][1], consumer.output_dim, ndim, width)
        return False


def _gives(shape: tuple | None, dim: int, ndim: int, width: int | None) -> bool:
    return shape is not None and len(shape) == ndim and ndim > 0 and shape[dim] == width


def shape_of(output: Any) -> tuple | None:
    """The shape of an output: a tensor's, or its first tensor's (a tuple or list)."""
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return next((shape for shape in map(shape_of, output) if shape is not None), None)
    return None


def shapes_of(args: Any) -> list:
    """The shapes of the tensors among ``args`` (lists of shapes for lists of tensors)."""
    found = []
    for x in args:
        if isinstance(x, torch.Tensor):
            found.append(tuple(x.shape))
        elif isinstance(x, (tuple, list)):
            found.append(shapes_of(x))
    return found
