"""One search, several latency budgets: the best architecture within each (the latency-accuracy front).

A search trains one distribution over architectures and one set of shared weights, whatever the device. For a
budget ``T``, the pick is among the ``candidates`` most probable architectures predicted to meet it (the exact
top-k within ``T``, :func:`~nni_proxyless.export.top_k`): the most probable of them, or, when they are ranked
(:func:`~nni_proxyless._rerank.rerank`), the best by the validation metric with the supernet's weights. The
candidates of every budget are ranked together, so an architecture that several budgets consider is evaluated
once.

Without targets, the budgets are spread evenly between the fastest and the slowest architecture the latency
table predicts (found by local search on its predictions, :func:`~nni_proxyless.latency._extremes.extremes`),
the slowest included: its pick is the search's unconstrained export.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .arch import ArchParameters
from .export import Architecture
from .latency import LatencyTable
from .latency._extremes import extremes
from .routing import uniform_selections

__all__ = ['FrontPick', 'default_targets', 'extreme_architectures', 'latency_front']

Top = Callable[[int, float], list[Architecture]]
"""``top(k, target)``: the ``k`` most probable architectures within ``target``, with their predicted latencies."""

Rank = Callable[[list[Architecture]], list[Architecture]]
"""Orders architectures best first (and sets their ``supernet_metric``)."""


@dataclass
class FrontPick:
    """The pick for one latency budget.

    Attributes:
        target: the budget, in the table's unit.
        architecture: the best architecture found within it (its ``latency``, ``probability`` and, when it was
            evaluated, ``supernet_metric`` set); ``None`` when none of those considered meets it.
        candidates: how many architectures within the budget were compared.
    """

    target: float
    architecture: Architecture | None
    candidates: int


def extreme_architectures(arch: ArchParameters, table: LatencyTable, seed: int = 0
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fastest and the slowest architecture the table predicts (local search on its predictions), as full
    samples: every label has a value, used or not, so that a step of the search that deepens a ``Repeat`` finds
    the kernel of each block it adds."""
    searched = {label: list(choice.values) for label, choice in arch.choices.items() if choice.kind != 'input'}

    def draw(rng: random.Random) -> dict[str, Any]:
        return {label: arch.choices[label].sample_value(selection.active)
                for label, selection in uniform_selections(arch.choices, rng).items()}

    fastest, slowest = (extremes(table, draw, searched, 1, fastest=side, seed=seed)[0] for side in (True, False))
    return fastest, slowest


def default_targets(arch: ArchParameters, table: LatencyTable, count: int = 5, seed: int = 0) -> list[float]:
    """``count`` budgets evenly spaced above the fastest architecture up to the slowest, the slowest included."""
    fastest, slowest = (table.predict(a) for a in extreme_architectures(arch, table, seed))
    return [fastest + (slowest - fastest) * i / count for i in range(1, count + 1)]


def latency_front(top: Top, targets: Sequence[float], candidates: int, rank: Rank | None = None) -> list[FrontPick]:
    """The pick for each budget of ``targets``, in their order.

    Args:
        top: the most probable architectures within a budget.
        targets: the budgets.
        candidates: architectures compared per budget (1: the most probable within it).
        rank: orders the candidates of all budgets at once and gives each its metric (``None``: by probability
            alone, no metric).
    """
    found = [top(candidates, target) for target in targets]
    if rank is not None:
        unique = {_key(a): a for within in found for a in within}
        position = {_key(a): i for i, a in enumerate(rank(list(unique.values())))}
        found = [sorted((unique[_key(a)] for a in within), key=lambda a: position[_key(a)]) for within in found]
    return [FrontPick(target, within[0] if within else None, len(within)) for target, within in zip(targets, found)]


def _key(architecture: dict[str, Any]) -> tuple:
    return tuple(sorted((label, repr(value)) for label, value in architecture.items()))
