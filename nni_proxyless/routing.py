"""Routing: which candidates of every label the supernet runs in the next forward.

A search step draws a :class:`Selection` per label (from :class:`~nni_proxyless.arch.ArchParameters`) and sets
them here, once; every mixed op of the supernet reads its labels' selections from this one object and never
draws on its own. Code that runs the supernet on other architectures (validation, latency tables) sets the
routing inside :meth:`Routing.use`, which restores the previous one afterwards.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch

if TYPE_CHECKING:
    from .labels import Choice

__all__ = ['Routing', 'Selection', 'uniform_selections']


@dataclass
class Selection:
    """The candidates of one label that run in the current step.

    Attributes:
        active: indices of the candidates whose outputs are used (one, or ``n_chosen`` for an ``InputChoice``).
        gated: indices whose binary gates receive gradients (architecture step only; empty otherwise).
        support: indices the gate weights are a softmax over: the sampled pair in ``two`` mode, all candidates
            in ``full_v2`` mode.
        logits: the label's logit tensor during an architecture step, ``None`` otherwise.
    """

    active: tuple[int, ...]
    gated: tuple[int, ...] = ()
    support: tuple[int, ...] = ()
    logits: torch.Tensor | None = None

    @property
    def is_gated(self) -> bool:
        """Whether this selection belongs to an architecture step (its gates receive gradients)."""
        return self.logits is not None

    def weights(self) -> torch.Tensor:
        """Gate weights over all candidates: the softmax over ``support``, zero elsewhere (differentiable)."""
        assert self.logits is not None, 'weights exist only during an architecture step'
        n = len(self.logits)
        if tuple(self.support) == tuple(range(n)):
            return torch.softmax(self.logits, dim=-1)
        # integer indexing and stacking only: an index tensor would be copied to the device (a sync)
        part = torch.softmax(torch.stack([self.logits[k] for k in self.support]), dim=-1)
        position = {k: i for i, k in enumerate(self.support)}
        zero = self.logits.new_zeros(())
        return torch.stack([part[position[k]] if k in position else zero for k in range(n)])

    def gated_only(self, gated: tuple[int, ...]) -> 'Selection':
        """The same selection with other gated candidates (an ``InputChoice`` gates each chosen input alone)."""
        return Selection(self.active, gated, self.support, self.logits)


class Routing:
    """The selection of every label for the next forward of the supernet.

    Args:
        choices: the labels' choices (shared with :class:`~nni_proxyless.arch.ArchParameters`, which owns it).
    """

    def __init__(self, choices: Mapping[str, 'Choice']):
        self._choices = choices
        self._selections: dict[str, Selection] = {}
        self._values: dict[str, Any] = {}
        self.exact_widths: set[str] = set()
        """Width labels that architecture steps must not widen (found on the first batch: see ``ops.widths``)."""

    @property
    def choices(self) -> Mapping[str, 'Choice']:
        """Every label of the supernet and what it chooses from."""
        return self._choices

    def set(self, selections: Mapping[str, Selection]) -> None:
        """Route every label to ``selections[label]`` (labels left out keep their selection)."""
        self._selections.update(selections)
        for label, selection in selections.items():
            self._values[label] = self._choices[label].values[selection.active[0]]

    @contextlib.contextmanager
    def use(self, selections: Mapping[str, Selection]) -> Iterator[None]:
        """Route to ``selections`` inside the ``with`` block, then back to the previous routing."""
        before = dict(self._selections)
        self.set(selections)
        try:
            yield
        finally:
            self._selections, self._values = {}, {}
            self.set(before)

    def __getitem__(self, label: str) -> Selection:
        selection = self._selections.get(label)
        if selection is None:  # not routed yet: the first candidates
            selection = Selection(active=tuple(range(self._choices[label].n_chosen)))
        return selection

    def value(self, label: str) -> Any:
        """The active value of ``label`` (its first active candidate's value)."""
        if label not in self._values:
            return self._choices[label].values[self[label].active[0]]
        return self._values[label]

    def values(self, label: str, indices: tuple[int, ...]) -> list[Any]:
        """The values of ``label`` at these candidate indices."""
        values = self._choices[label].values
        return [values[k] for k in indices]


def uniform_selections(choices: Mapping[str, Choice], rng: random.Random) -> dict[str, Selection]:
    """A uniformly drawn architecture: one candidate per label (``n_chosen`` distinct inputs for an input choice)."""
    return {label: Selection(active=tuple(sorted(rng.sample(range(len(choice.values)), choice.n_chosen))))
            for label, choice in choices.items()}
