"""Values that are NNI choices or expressions of choices, evaluated from the labels' routed values.

NNI spaces say "choose" inside arguments: ``MutableConv2d(c, nni.choice('w', [16, 32]))``, an expression such as
``make_divisible(w * 16, 8)`` or a ``Repeat`` depth ``d // 3``. :class:`Arguments` holds such named values; the
labels they read are registered as ``'value'`` choices (one logit tensor per label, however many places use it)
and every evaluation goes through :meth:`Arguments.at` (the routed values) or :meth:`Arguments.at_values`
(any assignment), memoised per assignment of the labels it reads, so a step costs a dictionary lookup.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Mapping

from nni.mutable import Categorical, Mutable, MutableExpression

from ..labels import Choice, Condition
from ..routing import Routing

__all__ = ['Arguments', 'choices_of', 'is_choice']

_MAX_COMBINATIONS = 100_000


def is_choice(value: Any) -> bool:
    """Whether ``value`` is an NNI choice or an expression of choices."""
    return isinstance(value, MutableExpression)


def choices_of(value: Any, where: str) -> dict[str, Choice]:
    """The labels a value reads, as :class:`Choice` objects of kind ``'value'``.

    Raises:
        TypeError: the value reads something that is not a categorical choice (e.g. ``nni.uniform``).
    """
    if not isinstance(value, Mutable):
        return {}
    found = {}
    for label, leaf in value.simplify().items():
        if not isinstance(leaf, Categorical):
            raise TypeError(f'{where} reads {leaf!r}: Proxyless searches categorical choices (nni.choice) only; '
                            'replace it with nni.choice(label, [values]).')
        choice = Choice(label, 'value', tuple(leaf.values))
        found[choice.label] = choice
    return found


class Arguments:
    """Named values, some of them choices or expressions of choices, evaluated for assignments of their labels.

    Args:
        values: name -> a constant, an ``nni.choice`` or an expression of choices.
        where: names the owner in error messages (e.g. ``"MutableConv2d at 'stem.0'"``).
    """

    def __init__(self, values: Mapping[str, Any], where: str):
        self.values = dict(values)
        self.where = where
        self.choices: dict[str, Choice] = {}
        for name, value in self.values.items():
            self.choices.update(choices_of(value, f'{where}, argument {name!r},'))
        self.labels: tuple[str, ...] = tuple(self.choices)
        self._cache: dict[tuple, dict[str, Any]] = {}

    def labels_of(self, name: str) -> tuple[str, ...]:
        """The labels argument ``name`` reads."""
        value = self.values[name]
        return tuple(value.simplify()) if isinstance(value, Mutable) else ()

    def at(self, routing: Routing) -> dict[str, Any]:
        """Every argument at the routed (active) values of its labels."""
        return self.at_values(tuple(routing.value(label) for label in self.labels))

    def at_values(self, values: tuple) -> dict[str, Any]:
        """Every argument for the labels' values given in :attr:`labels` order."""
        found = self._cache.get(values)
        if found is None:
            sample = dict(zip(self.labels, values))
            found = {name: value.evaluate(sample) if isinstance(value, MutableExpression) else value
                     for name, value in self.values.items()}
            self._cache[values] = found
        return found

    def at_sample(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Every argument for an NNI sample (which must give every label read here)."""
        missing = [label for label in self.labels if label not in sample]
        if missing:
            raise KeyError(f'{self.where}: the architecture gives no value for {missing}.')
        return self.at_values(tuple(sample[label] for label in self.labels))

    def combinations(self, candidates: Mapping[str, Iterable[Any]] | None = None) -> Iterable[tuple]:
        """Every assignment of the labels (in :attr:`labels` order), over ``candidates`` or all their values."""
        pools = [tuple(candidates[label]) if candidates and label in candidates else self.choices[label].values
                 for label in self.labels]
        count = math.prod(len(pool) for pool in pools)
        if count > _MAX_COMBINATIONS:
            raise ValueError(f'{self.where} reads {len(self.labels)} labels with {count} combinations of values '
                             f'(limit {_MAX_COMBINATIONS}); use fewer or smaller choices in one layer.')
        return itertools.product(*pools)

    def largest(self, name: str, candidates: Mapping[str, Iterable[Any]] | None = None) -> Any:
        """The largest value argument ``name`` takes over the assignments of :meth:`combinations`."""
        if not isinstance(self.values[name], Mutable):
            return self.values[name]
        return max(self.at_values(values)[name] for values in self.combinations(candidates))

    def condition(self, name: str, test) -> Condition:
        """The condition on the labels of argument ``name`` under which ``test(value)`` holds."""
        labels = self.labels_of(name)
        positions = [self.labels.index(label) for label in labels]
        selecting = {tuple(values[p] for p in positions)
                     for values in self.combinations() if test(self.at_values(values)[name])}
        return Condition(labels, frozenset(selecting))
