"""Labels: what each label of a model space chooses from, and the enclosing choices a label depends on.

A model space's choices (``LayerChoice``, ``InputChoice``, ``nni.choice`` values, ``Repeat`` depths) are
described once, as :class:`Choice` objects keyed by label; a label that only matters when enclosing choices take
certain values (a block inside a ``LayerChoice`` candidate, beyond a ``Repeat``'s depth, a cell's node) carries
:class:`Condition` objects. The architecture parameters, the mixed ops, the latency tables and the export all
read these two types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

__all__ = ['Choice', 'ChoiceKind', 'Condition', 'Occurrence', 'ALWAYS', 'hashable', 'plain_label']

ChoiceKind = Literal['layer', 'input', 'value']


@dataclass(frozen=True)
class Choice:
    """What a label chooses from.

    Attributes:
        label: the NNI label.
        kind: ``'layer'`` (a ``LayerChoice``), ``'input'`` (an ``InputChoice``) or ``'value'`` (an ``nni.choice``
            used in layer arguments, expressions or a ``Repeat`` depth).
        values: the candidates as NNI's samples spell them (names, input indices, values).
        n_chosen: how many candidates one sample takes (only ``InputChoice`` takes more than one).
    """

    label: str
    kind: ChoiceKind
    values: tuple
    n_chosen: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, 'label', plain_label(self.label))

    def sample_value(self, indices: Sequence[int]) -> Any:
        """The value NNI's ``freeze`` expects for these candidate indices."""
        if self.kind == 'input':
            return sorted(int(i) for i in indices)
        return self.values[indices[0]]


@dataclass(frozen=True)
class Condition:
    """One enclosing choice a label needs: the ``labels``' values must form one of the ``selecting`` tuples.

    A block inside ``LayerChoice`` candidate ``'a'`` has ``Condition(('op',), {('a',)})``; the third block of a
    ``Repeat`` whose depth is ``d // 2`` has ``Condition(('d',), {(v,) for v with v // 2 > 2})``.
    """

    labels: tuple[str, ...]
    selecting: frozenset

    def __post_init__(self) -> None:
        object.__setattr__(self, 'labels', tuple(plain_label(label) for label in self.labels))

    def holds(self, sample: dict[str, Any]) -> bool:
        """Whether ``sample`` gives these labels values that select the enclosed label."""
        if any(label not in sample for label in self.labels):
            return False
        return tuple(hashable(sample[label]) for label in self.labels) in self.selecting


Occurrence = tuple[Condition, ...]

ALWAYS = Condition((), frozenset([()]))
"""The condition of a child that runs whenever its parent runs (a cell's preprocessor)."""


def plain_label(label: str) -> str:
    """``label`` as a plain ``str``.

    NNI's labels are a ``str`` subclass (``nni.mutable.utils.label``) that ``torch.load(..., weights_only=True)``
    refuses to unpickle; every label kept by a search (and so in its checkpoints) is a plain ``str``.
    """
    return str.__str__(label)


def hashable(value: Any) -> Any:
    """A sample value as a key of :attr:`Condition.selecting` (an ``InputChoice``'s list becomes a tuple)."""
    return tuple(value) if isinstance(value, list) else value
