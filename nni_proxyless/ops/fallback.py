"""The fallback for parametrized modules no slicing rule covers: one module per combination of the choices.

A user's own ``ParametrizedModule`` (or an NNI layer whose choices sit in arguments the slicing rules do not
handle, e.g. a convolution's ``stride``) is built once per distinct combination of its arguments' values, and the
combinations are searched like ``LayerChoice`` candidates: no weight sharing between them, one of them runs per
weight step. At most :data:`FALLBACK_LIMIT` distinct modules are built; past it, the mutation names the module and
the count.

In an architecture step, each label is gated over its gated values with the other labels at their active values.
Candidates of different widths see their inputs cut to the shape they were last run with and their outputs
zero-padded to a common shape, so that the gate can compare them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from nni.mutable import Mutable
from nni.nas.nn.pytorch import ParametrizedModule

from ..labels import Condition
from ._expressions import Arguments
from .base import MixedOp, register_choice
from .gate import gate
from .sliced import bound_arguments
from .subnet import subnet_of

__all__ = ['CombinationChoice', 'FALLBACK_LIMIT']

FALLBACK_LIMIT = 64
"""The most modules :class:`CombinationChoice` builds for one parametrized module."""


class CombinationChoice(MixedOp):
    """A parametrized module searched as a ``LayerChoice`` over the distinct combinations of its choices.

    Args:
        module: the parametrized module (its ``freeze(sample)`` builds each candidate).
        routing: the supernet's routing.
        where: names the module in messages.
    """

    def __init__(self, module: ParametrizedModule, routing, where: str):
        self.arguments = Arguments(bound_arguments(module), where)
        super().__init__(routing, list(module.mutables))
        self.where = where
        self.candidates = nn.ModuleList()
        self._candidate_of: dict[tuple, int] = {}
        built: dict[str, int] = {}
        for values in self.arguments.combinations():
            key = repr(sorted(self.arguments.at_values(values).items()))
            if key not in built:
                if len(built) == FALLBACK_LIMIT:
                    raise ValueError(f'{where} has no slicing rule, and its choices give more than {FALLBACK_LIMIT} '
                                     'distinct modules to search as separate candidates. Use fewer values, or '
                                     'write the module with NNI layers Proxyless slices (MutableConv2d, ...).')
                built[key] = len(self.candidates)
                self.candidates.append(module.freeze(dict(zip(self.labels, values))))
            self._candidate_of[values] = built[key]
        self._shapes: dict[int, tuple[list, Any]] = {}  # candidate -> (input shapes, output shape), last run

    @property
    def labels(self) -> tuple[str, ...]:
        return self.arguments.labels

    def extra_repr(self) -> str:
        return f'{self.where}: {len(self.candidates)} candidates over {list(self.labels)}'

    def forward(self, *inputs: Any) -> Any:
        routing = self._routing
        values = tuple(routing.value(label) for label in self.labels)
        active = self._candidate_of[values]
        if not any(routing[label].gated for label in self.labels):  # a weight step: exact inputs
            return self._run(active, inputs)
        gated = [label for label in self.labels if routing[label].is_gated]
        if not gated:  # widened without gates (the first batch's width check)
            return self._adapted(active, inputs)
        alternatives = {label: {k: self._alternative(values, label, k) for k in routing[label].gated}
                        for label in gated}
        y = self._adapted(active, inputs)
        shape = _largest([self._shapes.get(c, (None, None))[1] for found in alternatives.values()
                          for c in found.values()] + [tuple(y.shape[1:])])
        y = _fit(y, shape)
        for label in gated:
            selection = routing[label]
            y = gate(y, selection, selection.active[0],
                     lambda k, label=label: _fit(self._adapted(alternatives[label][k], inputs), shape), label,
                     inputs=inputs, recomputes=True)
        return y

    def candidate_index(self, values: tuple) -> int:
        """The candidate built for these values of :attr:`labels`."""
        return self._candidate_of[values]

    def inputs_for(self, candidate: int, inputs: tuple) -> tuple:
        """Inputs cut to the shapes ``candidate`` was last run with (as they are when it never ran)."""
        known = self._shapes.get(candidate)
        return inputs if known is None else tuple(_cut(x, shape) for x, shape in zip(inputs, known[0]))

    def _alternative(self, values: tuple, label: str, k: int) -> int:
        changed = list(values)
        changed[self.labels.index(label)] = self._routing.values(label, (k,))[0]
        return self._candidate_of[tuple(changed)]

    def _run(self, candidate: int, inputs: tuple) -> Any:
        output = self.candidates[candidate](*inputs)
        if isinstance(output, torch.Tensor):
            self._shapes[candidate] = ([_shape(x) for x in inputs], tuple(output.shape[1:]))
        return output

    def _adapted(self, candidate: int, inputs: tuple) -> torch.Tensor:
        """The candidate on inputs cut to the shapes it was last run with (wider ones carry unused channels)."""
        return self.candidates[candidate](*self.inputs_for(candidate, inputs))

    def selected_children(self):
        for candidate_index, module in enumerate(self.candidates):
            selecting = frozenset(v for v, c in self._candidate_of.items() if c == candidate_index)
            yield module, Condition(self.labels, selecting)

    def freeze(self, sample: dict[str, Any]) -> nn.Module:
        """A copy of the candidate for the sample's values, with its trained weights."""
        self.validate(sample)
        values = tuple(sample[label] for label in self.labels)
        return subnet_of(self.candidates[self._candidate_of[values]], sample)

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict, mutate_kwargs: dict) -> 'CombinationChoice | None':
        """Mutation hook (after every slicing rule): any other parametrized module whose arguments hold choices."""
        if not isinstance(module, ParametrizedModule) or not any(isinstance(m, Mutable) for m in module.mutables):
            return None
        op = cls(module, mutate_kwargs['arch'].routing, f'{type(module).__name__} at {name!r}')
        for choice in op.arguments.choices.values():
            register_choice(mutate_kwargs, choice)
        return op


def _shape(x: Any) -> tuple | None:
    return tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else None


def _cut(x: Any, shape: tuple | None) -> Any:
    if not isinstance(x, torch.Tensor) or shape is None or len(shape) != x.dim() - 1:
        return x
    return x[(slice(None), *(slice(0, size) for size in shape))]


def _largest(shapes: list) -> tuple | None:
    known = [shape for shape in shapes if shape is not None]
    if not known or len({len(shape) for shape in known}) != 1:
        return None
    return tuple(max(sizes) for sizes in zip(*known))


def _fit(y: Any, shape: tuple | None) -> Any:
    """``y`` cut or zero-padded to ``shape`` (the batch dimension excluded)."""
    if not isinstance(y, torch.Tensor) or shape is None or len(shape) != y.dim() - 1:
        return y
    y = _cut(y, shape)
    padding = []
    for size, wanted in zip(reversed(y.shape[1:]), reversed(shape)):
        padding += [0, max(0, wanted - size)]
    return F.pad(y, padding) if any(padding) else y
