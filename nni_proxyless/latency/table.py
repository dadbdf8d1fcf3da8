"""``LatencyTable``: the latency of every candidate of a search space, its predictions and its expectation.

A table is a fixed part plus terms. A term is the cost of one place of the space as a function of the labels it
depends on (a ``LayerChoice``'s candidates; a layer whose kernel size and widths are choices, priced for every
combination of those labels, since kernel and width costs are joint, not additive; a cell operation on each of
its inputs), or a constant (the own cost of a ``Repeat`` block), in the table's unit. A term counts when its
enclosing choices select it (a block counts when the depth exceeds its index). So

    latency(arch) = fixed + sum over terms used by ``arch`` of the term's cost at ``arch``

and the expected latency under per-label weights ``w`` (differentiable in every involved label's weights) is

    E = fixed + sum over terms of P(term used) * sum over combinations c of prod_l w_l(c_l) * cost(c),

with ``P(term used)`` the product over its enclosing conditions of the weight they give to selecting values.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch

from .._io import write_json_atomically
from ._expectation import CompiledExpectation
from ._term import Term
from ..labels import Condition, hashable, plain_label

__all__ = ['LatencyTable', 'Term', 'TableError']

FORMAT_VERSION = 2


class TableError(ValueError):
    """A latency table file is corrupt or does not match the search space (the message names file and label)."""


@dataclass
class LatencyTable:
    """Latency of a search space's architectures, per candidate (see the module docstring for the model).

    Attributes:
        labels: the candidates of every label of the space it was built for (its signature).
        fixed: cost of everything that is not a choice.
        terms: the costs of the choices.
        unit: ``'ms'``, or the unit of a proxy (``'MFLOPs'``).
        hardware: how the costs were obtained (e.g. ``'cpu, 1 thread, torch 2.14.1'``).
        dummy_input: the input shape the costs were measured at.
    """

    labels: dict[str, list]
    fixed: float
    terms: list[Term]
    unit: str = 'ms'
    hardware: str = ''
    dummy_input: list[int] = field(default_factory=list)
    _compiled: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.labels = {plain_label(label): values for label, values in self.labels.items()}

    # ----------------------------------------------------------------------------------------- predict

    def predict(self, arch: dict[str, Any]) -> float:
        """Latency of a fixed architecture (an NNI sample; labels it does not use may be absent)."""
        total = self.fixed
        for term in self.terms:
            if all(condition.holds(arch) for condition in term.when):
                total += term.costs[self._flat_index(term.labels, arch)]
        return total

    def expected(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """Expected latency under per-label candidate weights (probabilities, or ``two``-mode pair weights).

        A float64 scalar on the weights' device, differentiable in every weight; computed without autocast, so
        mixed precision does not round it (see :mod:`._expectation`, compiled once per table and device).
        """
        device = next(iter(weights.values())).device if weights else torch.device('cpu')
        compiled = self._compiled.get(device)
        if compiled is None:
            compiled = self._compiled[device] = CompiledExpectation(candidates=self.labels, fixed=self.fixed,
                                                                      terms=self.terms, device=device)
        with _no_autocast(device.type):
            return compiled(weights)

    def bounds(self) -> tuple[float, float]:
        """Lower and upper bounds of any architecture's latency (each term at its cheapest / dearest; a term
        whose enclosing choices can leave it out also counts as 0)."""
        low = high = self.fixed
        for term in self.terms:
            optional = any(len(c.selecting) < math.prod(len(self.labels[label]) for label in c.labels)
                           for c in term.when)
            low += min(0.0, min(term.costs)) if optional else min(term.costs)
            high += max(0.0, max(term.costs)) if optional else max(term.costs)
        return low, high

    def __getstate__(self) -> dict:
        # tables travel between processes (DDP takes rank 0's): without the compiled copies of the costs, which
        # belong to the process and device that made them
        return {**self.__dict__, '_compiled': {}}

    def _flat_index(self, labels: tuple[str, ...], arch: dict[str, Any]) -> int:
        index = 0
        for label in labels:
            try:
                position = _position(self.labels[label], arch[label])
            except (KeyError, ValueError):
                raise KeyError(f'Architecture {arch} has no valid value for label {label!r} '
                               f'(candidates {self.labels.get(label)}).') from None
            index = index * len(self.labels[label]) + position
        return index

    # ------------------------------------------------------------------------------------ check / io

    def check_space(self, labels: dict[str, Iterable], source: str = 'the latency table') -> None:
        """Raise :class:`TableError` unless the table prices exactly the labels and candidates given."""
        for label, values in labels.items():
            if label not in self.labels:
                raise TableError(f'{source} has no label {label!r}; it was built for another search space.')
            if list(values) != list(self.labels[label]):
                raise TableError(f'{source}: label {label!r} has candidates {self.labels[label]}, '
                                 f'the search space has {list(values)}.')
        extra = sorted(set(self.labels) - set(labels))
        if extra:
            raise TableError(f'{source} prices labels the search space does not have: {extra}.')

    def to_json(self) -> dict:
        """The table as a JSON-compatible dict (format version included)."""
        return {'format': 'nni-proxyless-latency-table', 'version': FORMAT_VERSION, 'unit': self.unit,
                'hardware': self.hardware, 'dummy_input': list(self.dummy_input), 'fixed': self.fixed,
                'labels': self.labels,
                'terms': [{'labels': list(t.labels), 'costs': list(t.costs),
                           'when': [[list(c.labels), sorted((list(v) for v in c.selecting), key=repr)]
                                    for c in t.when]}
                          for t in self.terms]}

    def save(self, path: str | os.PathLike) -> None:
        """Write the table as JSON, atomically (a temporary file renamed over ``path``)."""
        write_json_atomically(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> 'LatencyTable':
        """Read a table written by :meth:`save`; raise :class:`TableError` naming the file if it is not one."""
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TableError(f'Cannot read latency table {path}: {error}') from error
        return cls.from_json(data, source=str(path))

    @classmethod
    def from_json(cls, data: Any, source: str = 'latency table') -> 'LatencyTable':
        """Build a table from :meth:`to_json`'s dict, checking every field."""
        if not isinstance(data, dict) or data.get('format') != 'nni-proxyless-latency-table':
            raise TableError(f'{source} is not an nni-proxyless latency table.')
        if data.get('version') not in (1, FORMAT_VERSION):
            raise TableError(f'{source} has format version {data.get("version")!r}; this release reads '
                             f'version {FORMAT_VERSION}. Build the table again.')
        try:
            labels = {str(k): list(v) for k, v in data['labels'].items()}
            terms = [_term_from_json(t, labels, source, data['version']) for t in data['terms']]
            table = cls(labels=labels, fixed=_finite(data['fixed'], source, 'fixed'), terms=terms,
                        unit=str(data.get('unit', 'ms')), hardware=str(data.get('hardware', '')),
                        dummy_input=[int(d) for d in data.get('dummy_input', [])])
        except (KeyError, TypeError, AttributeError) as error:
            raise TableError(f'{source} is malformed: missing or wrong field {error}.') from error
        return table


def _no_autocast(device_type: str) -> Any:
    if not torch.amp.is_autocast_available(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)


def _position(values: list, value: Any) -> int:
    """Where ``value`` is among a label's candidates (an InputChoice's one-input sample ``[j]`` is candidate j)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return values.index(value)


def _term_from_json(data: dict, labels: dict[str, list], source: str, version: int) -> Term:
    if version == 1:  # one label (or None) and (label, values) conditions
        data = {'labels': [] if data['label'] is None else [data['label']], 'costs': data['costs'],
                'when': [[[outer], [[v] for v in values]] for outer, values in data['when']]}
    term_labels = tuple(str(label) for label in data['labels'])
    costs = tuple(_finite(c, source, f'cost of {list(term_labels)}') for c in data['costs'])
    for label in term_labels:
        if label not in labels:
            raise TableError(f'{source}: a term prices label {label!r}, which is not in its labels.')
    expected = math.prod(len(labels[label]) for label in term_labels)
    if len(costs) != expected:
        raise TableError(f'{source}: a term on labels {list(term_labels)} has {len(costs)} costs; their '
                         f'candidates make {expected} combinations.')
    when = []
    for outer, selecting in data['when']:
        for label in outer:
            if label not in labels:
                raise TableError(f'{source}: a term depends on label {label!r}, which is not in its labels.')
        when.append(Condition(tuple(outer), frozenset(tuple(hashable(v) for v in values) for values in selecting)))
    return Term(costs=costs, labels=term_labels, when=tuple(when))


def _finite(value: Any, source: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TableError(f'{source}: {what} is {value!r}, not a finite number.')
    return float(value)
