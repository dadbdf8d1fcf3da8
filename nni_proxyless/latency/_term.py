"""``Term``: one cost of a latency table, as the table stores it and its expectation reads it.

A term is the cost of one place of the space as a function of the labels it depends on, counted when its
enclosing conditions hold (see :mod:`.table`). The table holds its terms and hands them to
:mod:`._expectation`, which compiles them: both import this module, and the expectation never imports the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..labels import Condition, plain_label

__all__ = ['Term']


@dataclass(frozen=True)
class Term:
    """One cost of a table.

    Attributes:
        costs: the cost at every combination of ``labels``' values (row-major, in the labels' candidate order),
            or one constant when ``labels`` is empty.
        labels: the labels the costs depend on (a single label may be given as a string).
        when: enclosing conditions that must hold for this term to count (``(label, values)`` pairs are accepted
            for a single enclosing label and turned into :class:`~nni_proxyless.labels.Condition`).
    """

    costs: tuple[float, ...]
    labels: tuple[str, ...] = ()
    when: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        labels = (self.labels,) if isinstance(self.labels, str) else tuple(self.labels or ())
        object.__setattr__(self, 'labels', tuple(plain_label(label) for label in labels))
        object.__setattr__(self, 'costs', tuple(float(c) for c in self.costs))
        object.__setattr__(self, 'when', tuple(_condition(w) for w in self.when))


def _condition(value: Any) -> Condition:
    if isinstance(value, Condition):
        return value
    label, values = value
    return Condition((label,), frozenset((v,) for v in values))
