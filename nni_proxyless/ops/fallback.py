"""The fallback for parametrized modules no slicing rule covers: one module per combination of the choices.

A user's own ``ParametrizedModule`` (or an NNI layer whose choices sit in arguments the slicing rules do not
handle, e.g. a convolution's ``stride``) is built once per distinct combination of its arguments' values, and the
combinations are searched like ``LayerChoice`` candidates: no weight sharing between them, one of them runs per
weight step. At most :data:`FALLBACK_LIMIT` distinct modules are built; past it, the mutation names the module, the
count and the arguments holding the choices.

Every candidate runs on the op's real input, in weight and architecture steps alike. In an architecture step each
label is gated over its gated values with the other labels at their active values, except the labels that size the
op's own input (found by the first-batch check of :mod:`.space_check`, :attr:`CombinationChoice.input_labels`):
their other values need another input, which only the layers before the op can give, so they are gated there.
Candidates whose outputs differ in one dimension are widths: as for the sliced layers, the output is zero-padded
to the widest of the gated values (layers after it read its prefix), and the first-batch check refuses outputs
that differ in more than one dimension.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn
from nni.mutable import Mutable
from nni.nas.nn.pytorch import ParametrizedModule

from ..labels import Condition
from ._expressions import Arguments, is_choice
from .base import MixedOp, SpaceError, register_choice
from .gate import gate
from .sliced import bound_arguments, fit
from .subnet import subnet_of

__all__ = ['CombinationChoice', 'FALLBACK_LIMIT', 'widest_shape']

FALLBACK_LIMIT = 64
"""The most modules :class:`CombinationChoice` builds for one parametrized module."""


class CombinationChoice(MixedOp):
    """A parametrized module searched as a ``LayerChoice`` over the distinct combinations of its choices.

    Args:
        module: the parametrized module (its ``freeze(sample)`` builds each candidate).
        routing: the supernet's routing.
        where: names the module in messages.

    Attributes:
        input_labels: the labels whose values change the shape of this op's input (set by the first-batch check of
            :mod:`.space_check`); an architecture step does not gate them here.

    Raises:
        ValueError: the choices give more than :data:`FALLBACK_LIMIT` distinct modules.
    """

    def __init__(self, module: ParametrizedModule, routing, where: str):
        self.arguments = Arguments(bound_arguments(module), where)
        super().__init__(routing, list(module.mutables))
        self.where = where
        self.input_labels: set[str] = set()
        keys = {values: repr(sorted(self.arguments.at_values(values).items()))
                for values in self.arguments.combinations()}
        distinct = list(dict.fromkeys(keys.values()))
        if len(distinct) > FALLBACK_LIMIT:
            raise ValueError(_too_many(where, self.arguments, len(distinct)))
        index = {key: i for i, key in enumerate(distinct)}
        self._candidate_of: dict[tuple, int] = {values: index[key] for values, key in keys.items()}
        builds: dict[int, tuple] = {}
        for values, candidate in self._candidate_of.items():
            builds.setdefault(candidate, values)
        self.candidates = nn.ModuleList(module.freeze(dict(zip(self.labels, builds[candidate])))
                                        for candidate in range(len(distinct)))

    @property
    def labels(self) -> tuple[str, ...]:
        return self.arguments.labels

    def extra_repr(self) -> str:
        return f'{self.where}: {len(self.candidates)} candidates over {list(self.labels)}'

    def forward(self, *inputs: Any) -> Any:
        routing = self._routing
        values = tuple(routing.value(label) for label in self.labels)
        active = self._candidate_of[values]
        y = self.candidates[active](*inputs)
        if not any(routing[label].gated for label in self.labels):  # a weight step
            return y
        widening = self._widening_outputs(values, active, inputs)
        shape = widest_shape([_shape(output) for output in (y, *widening.values())], f'{self.where}:')
        y = _fitted(y, shape)
        for label in self.labels:
            selection = routing[label]
            if selection.is_gated and label not in self.input_labels:
                y = gate(y, selection, selection.active[0],
                         lambda k, label=label: _fitted(self._output(self._alternative(values, label, k), inputs,
                                                                     widening), shape), label, inputs=inputs,
                         recomputes=True)
        return y

    def candidate_index(self, values: tuple) -> int:
        """The candidate built for these values of :attr:`labels`."""
        return self._candidate_of[values]

    def _widening_outputs(self, values: tuple, active: int, inputs: tuple) -> dict[int, Any]:
        """The outputs (without a graph) of the candidates an architecture step widens the output over: every
        combination of the gated values, but for labels kept at their exact width and labels sizing the input."""
        routing = self._routing
        pools = [routing.values(label, routing[label].gated) if routing[label].gated and label not in
                 routing.exact_widths and label not in self.input_labels else [value]
                 for label, value in zip(self.labels, values)]
        others = {self._candidate_of[combination] for combination in itertools.product(*pools)} - {active}
        with torch.no_grad():
            return {candidate: self.candidates[candidate](*inputs) for candidate in sorted(others)}

    def _output(self, candidate: int, inputs: tuple, known: dict[int, Any]) -> Any:
        return known[candidate] if candidate in known else self.candidates[candidate](*inputs)

    def _alternative(self, values: tuple, label: str, k: int) -> int:
        changed = list(values)
        changed[self.labels.index(label)] = self._routing.values(label, (k,))[0]
        return self._candidate_of[tuple(changed)]

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


def widest_shape(shapes: list[tuple | None], where: str) -> tuple | None:
    """The elementwise largest of the output ``shapes`` of candidates (``None`` where one is not a tensor's).

    Raises:
        SpaceError: the shapes differ in more than one dimension (a width is one dimension; binary gates cannot
            compare outputs that differ otherwise, e.g. in their spatial size).
    """
    if any(shape is None for shape in shapes):
        return None
    distinct = sorted(set(shapes))
    if len({len(shape) for shape in distinct}) == 1 and sum(len(set(sizes)) > 1 for sizes in zip(*distinct)) <= 1:
        return tuple(max(sizes) for sizes in zip(*distinct))
    raise SpaceError(f'{where} candidates give outputs of shapes {", ".join(map(str, distinct))}, which differ in '
                     'more than one dimension. Binary gates compare the candidates of a choice on one output, so '
                     'they may differ in their width alone: make the other dimensions agree (e.g. the same stride, '
                     'or pooling to one size inside the module).')


def _shape(output: Any) -> tuple | None:
    return tuple(output.shape) if isinstance(output, torch.Tensor) else None


def _fitted(y: Any, shape: tuple | None) -> Any:
    """``y`` with ``shape``: zeros past a narrower width, the prefix of a wider one (a label kept exact)."""
    if shape is None or not isinstance(y, torch.Tensor):
        return y
    for dim, size in enumerate(shape):
        y = fit(y, size, dim)
    return y


def _too_many(where: str, arguments: Arguments, count: int) -> str:
    """The message for a module whose choices give more than :data:`FALLBACK_LIMIT` distinct modules."""
    holding = [f"{name!r} (label{'s' if len(arguments.labels_of(name)) > 1 else ''} "
               f"{', '.join(map(repr, arguments.labels_of(name)))})"
               for name, value in arguments.values.items() if is_choice(value)]
    return (f'{where} has no slicing rule, so each distinct combination of its choices becomes a separate module: '
            f'its arguments {" and ".join(holding)} give {count} distinct modules, more than the limit of '
            f'{FALLBACK_LIMIT}. Give these arguments fewer values, or build the module from NNI layers that '
            'Proxyless slices (MutableConv2d, MutableLinear, ...).')
