"""Weight-step paths within the budgets a search will deploy to (``Proxyless(deploy_targets=[...])``).

Without budgets, a weight step trains a path drawn from the whole distribution, which soon favours the large
architectures: the shared weights are then tuned to them, and the subnets that fit a small budget are judged by
weights they rarely ran alone (on the value ground truth of docs/deploy.md, the smallest budget's pick ranked
22nd of 32, behind a random pick). With budgets ``T_1 < ... < T_n``, weight step ``t`` draws from the
distribution *restricted* to ``T_(t mod n + 1)``. No weight step trains an architecture above the largest
budget, so exports without a ``latency_target`` are limited to it; the architecture step is unchanged. (A turn
without a limit every ``n + 1``-th step, which would keep the unconstrained export trained, made the smallest
budget's picks worse again: the large paths it trains are what the shared weights favour.)

The restricted draw is rejection sampling: the step's own draw (the one an unrestricted search makes) first,
then up to ``TRIES - 1`` further independent draws of that step (:meth:`ArchParameters.samples`, each label's
draws in one call), the first within the budget taken. When none
is (the distribution puts almost no mass within the budget), the step trains the most probable architecture
within it (:func:`~nni_proxyless.export.top_k`, among the ``FALLBACK_VISITS`` most probable; searched again only
after an architecture step changed the logits), or, if none of those is within it, the fastest architecture the
table predicts. Every draw is a function of the seed and the step, so processes of a distributed search and a
resumed search draw the same paths.
"""

from __future__ import annotations

import logging
from typing import Sequence

from .arch import ArchParameters, Selection
from .export import top_k
from .front import extreme_architectures
from .latency.table import LatencyTable

__all__ = ['BudgetPaths']

_logger = logging.getLogger('nni.proxyless')

TRIES = 64
"""Draws from the distribution per restricted weight step before the most probable within the budget is taken."""

FALLBACK_VISITS = 5_000
"""Most probable architectures the fallback considers (``top_k``'s ``max_visited``)."""

FURTHER_PHASE = 100
"""The phase of :meth:`ArchParameters.generator` the further draws use (:meth:`ArchParameters.samples`; the
phases below stay free for other samplers)."""


class BudgetPaths:
    """Draws each weight step's path within one of the deployment budgets in turn (see the module docstring).

    Args:
        targets: the budgets, in the latency table's unit, in the order of their turns (smallest first, as
            ``LatencyConfig.deploy_targets`` holds them).
    """

    def __init__(self, targets: Sequence[float]):
        self.targets = tuple(targets)
        self.fallbacks = 0
        self._fastest: dict[str, Selection] | None = None
        self._most_probable: dict[float, tuple[tuple[float, ...], dict[str, Selection]]] = {}

    def check(self, arch: ArchParameters, table: LatencyTable) -> None:
        """Find the fastest architecture (the last fallback) and refuse a budget it does not meet: the table's
        lower bound, which ``latency_target`` is checked against, can be below every architecture.

        Raises:
            ValueError: naming the budget, the unit and what the fastest architecture found costs.
        """
        fastest, _ = extreme_architectures(arch, table, seed=arch.seed)
        cost = table.predict(fastest)
        for target in self.targets:
            if cost > target:
                raise ValueError(f'The deploy_targets budget {target:g} {table.unit} is below every architecture: '
                                 f'the fastest found is predicted at {cost:.4g} {table.unit} on {table.hardware}. '
                                 'Raise that budget or leave it out.')
        self._fastest = arch.selections_for(fastest)

    def draw(self, arch: ArchParameters, table: LatencyTable, step: int) -> dict[str, Selection]:
        """The path of weight step ``step``: a draw from the distribution within the budget of its turn."""
        target = self.targets[step % len(self.targets)]
        drawn = arch.sample(step)
        if self._within(arch, table, drawn, target):
            return drawn
        for drawn in arch.samples(step, FURTHER_PHASE, TRIES - 1):
            if self._within(arch, table, drawn, target):
                return drawn
        return self._most_probable_within(arch, table, target)

    @staticmethod
    def _within(arch: ArchParameters, table: LatencyTable, selections: dict[str, Selection], target: float) -> bool:
        return table.predict(arch.sample_of(selections)) <= target

    def _most_probable_within(self, arch: ArchParameters, table: LatencyTable, target: float
                              ) -> dict[str, Selection]:
        logits = tuple(float(v) for p in arch.parameters() for v in p.detach().flatten().tolist())
        cached = self._most_probable.get(target)
        if cached is None or cached[0] != logits:
            self.fallbacks += 1
            if self.fallbacks == 1:
                _logger.info('deploy_targets: the distribution puts little probability within %g %s; its weight '
                             'steps train the most probable architecture within it instead of a draw.',
                             target, table.unit)
            found = top_k(arch, 1, accept=lambda sample: table.predict(sample) <= target,
                          max_visited=FALLBACK_VISITS, warn=False)
            if found:
                path = arch.selections_for(found[0])
            else:
                if self._fastest is None:
                    self.check(arch, table)
                path = self._fastest
            cached = self._most_probable[target] = (logits, path)
        return cached[1]
