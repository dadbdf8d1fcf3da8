"""``LatencyTable``: the latency of every candidate of a search space, its predictions and its expectation.

A table is a fixed part plus terms. A term is the cost of one choice occurrence (a ``LayerChoice``'s candidates,
in the table's unit) or a constant (the own cost of a ``Repeat`` block), counted when its enclosing choices
select it (a block counts when the depth exceeds its index). So

    latency(arch) = fixed + sum over terms used by ``arch`` of the term's cost at ``arch``

and the expected latency under per-label weights ``w`` (differentiable) is

    E = fixed + sum over terms of P(term used) * sum_k w_label(k) * cost(k),

with ``P(term used)`` the product over its enclosing choices of the weight they give to selecting values.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch

from .._io import write_json_atomically

__all__ = ['LatencyTable', 'Term', 'TableError']

FORMAT_VERSION = 1


class TableError(ValueError):
    """A latency table file is corrupt or does not match the search space (the message names file and label)."""


@dataclass(frozen=True)
class Term:
    """One cost of a table.

    Attributes:
        costs: the cost of each candidate of ``label`` (in the label's candidate order), or one constant.
        label: the label the costs depend on; ``None`` for a constant.
        when: enclosing choices that must select this term: ``((label, values that select it), ...)``.
    """

    costs: tuple[float, ...]
    label: str | None = None
    when: tuple[tuple[str, tuple], ...] = ()


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

    # ----------------------------------------------------------------------------------------- predict

    def predict(self, arch: dict[str, Any]) -> float:
        """Latency of a fixed architecture (an NNI sample; labels it does not use may be absent)."""
        total = self.fixed
        for term in self.terms:
            if all(arch.get(outer, _ABSENT) in values for outer, values in term.when):
                total += term.costs[0] if term.label is None else term.costs[self._index(term.label, arch)]
        return total

    def expected(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """Expected latency under per-label candidate weights (probabilities, or ``two``-mode pair weights)."""
        total = torch.tensor(self.fixed, dtype=torch.float64)
        for term in self.terms:
            used = torch.ones((), dtype=torch.float64)
            for outer, values in term.when:
                used = used * sum(weights[outer][self.labels[outer].index(v)].double() for v in values)
            costs = torch.tensor(term.costs, dtype=torch.float64)
            cost = costs[0] if term.label is None else (weights[term.label].double() * costs).sum()
            total = total + used * cost
        return total

    def bounds(self) -> tuple[float, float]:
        """Lower and upper bounds of any architecture's latency (each term at its cheapest / dearest; a term
        whose enclosing choices can leave it out also counts as 0)."""
        low = high = self.fixed
        for term in self.terms:
            optional = any(set(values) != set(self.labels[outer]) for outer, values in term.when)
            low += min(0.0, min(term.costs)) if optional else min(term.costs)
            high += max(0.0, max(term.costs)) if optional else max(term.costs)
        return low, high

    def _index(self, label: str, arch: dict[str, Any]) -> int:
        try:
            return self.labels[label].index(arch[label])
        except (KeyError, ValueError):
            raise KeyError(f'Architecture {arch} has no valid value for label {label!r} '
                           f'(candidates {self.labels.get(label)}).') from None

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
                'terms': [{'label': t.label, 'costs': list(t.costs), 'when': [[o, list(v)] for o, v in t.when]}
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
        if data.get('version') != FORMAT_VERSION:
            raise TableError(f'{source} has format version {data.get("version")!r}; this release reads '
                             f'version {FORMAT_VERSION}. Build the table again.')
        try:
            labels = {str(k): list(v) for k, v in data['labels'].items()}
            terms = [_term_from_json(t, labels, source) for t in data['terms']]
            table = cls(labels=labels, fixed=_finite(data['fixed'], source, 'fixed'), terms=terms,
                        unit=str(data.get('unit', 'ms')), hardware=str(data.get('hardware', '')),
                        dummy_input=[int(d) for d in data.get('dummy_input', [])])
        except (KeyError, TypeError, AttributeError) as error:
            raise TableError(f'{source} is malformed: missing or wrong field {error}.') from error
        return table


_ABSENT = object()


def _term_from_json(data: dict, labels: dict[str, list], source: str) -> Term:
    label = data['label']
    costs = tuple(_finite(c, source, f'cost of {label!r}') for c in data['costs'])
    if label is not None:
        if label not in labels:
            raise TableError(f'{source}: a term prices label {label!r}, which is not in its labels.')
        if len(costs) != len(labels[label]):
            raise TableError(f'{source}: label {label!r} has {len(labels[label])} candidates but '
                             f'{len(costs)} costs.')
    elif len(costs) != 1:
        raise TableError(f'{source}: a constant term has {len(costs)} costs.')
    when = []
    for outer, values in data['when']:
        if outer not in labels:
            raise TableError(f'{source}: a term depends on label {outer!r}, which is not in its labels.')
        when.append((outer, tuple(values)))
    return Term(costs=costs, label=label, when=tuple(when))


def _finite(value: Any, source: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TableError(f'{source}: {what} is {value!r}, not a finite number.')
    return float(value)

