"""Exported architectures: the exact top-k under the product distribution ``P(m) = prod_l p_l(m_l)``.

Labels that an architecture does not use (blocks beyond a ``Repeat``'s chosen depth, choices inside an
unchosen ``LayerChoice`` candidate) are dropped from it, so two results never differ only in an unused label.
Architectures are ranked by the probability of their most probable full sample, i.e. with every unused label at
its most probable value: the product over used labels of ``p_l(m_l)`` times the product over unused labels of
``max p_l``. So the top-1 is the most probable value of every label (the argmax the search validates), and a
shallow architecture is not preferred merely for having fewer labels.

The search enumerates rank vectors best-first: each label's values are ranked by probability, and an
architecture is the vector of its labels' ranks (all 0: the most probable one), labels taken enclosing labels
first. Each vector has one parent (its last non-zero rank lowered by one) that is at least as probable, so a
heap that pops the best vector and pushes its children (one rank raised, at or after its last non-zero one;
an unused label keeps rank 0) yields every architecture exactly once and exactly in order. Equal probabilities
come in the order of the rank vectors (lexicographic). For ``k`` architectures over ``L`` labels the search
creates at most ``k * (L + 1)`` vectors, however many probabilities are tied (a uniform distribution
included). With an ``accept`` filter (a latency limit) the architectures it rejects count too, up to
``max_visited``.
"""

from __future__ import annotations

import heapq
import logging
import math
from typing import Any, Callable

from torch import nn
from nni.nas.space import ModelStatus, RawFormatModelSpace

from . import _checks
from .arch import ArchParameters
from .ops.subnet import subnet_of

__all__ = ['Architecture', 'ExportedModelSpace', 'top_k']

_logger = logging.getLogger('nni.proxyless')


class Architecture(dict):
    """An exported architecture: the dict ``model_space.freeze(...)`` takes, plus what the search knows of it.

    Attributes:
        probability: the probability of this architecture with its unused labels at their most probable values
            (the product over all labels; without ``Repeat`` or nested choices, simply its probability).
        latency: its predicted latency when the search had a latency table (else ``None``), in
            :attr:`latency_unit`.
        latency_unit: ``'ms'``, or ``'MFLOPs'`` with the FLOPs proxy.
        supernet_metric: its validation metric with the supernet's weights when it was re-ranked
            (``rerank_top_k``, :meth:`~nni_proxyless.Proxyless.rerank`), else ``None``.
    """

    def __init__(self, sample: dict[str, Any], probability: float, latency: float | None = None,
                 latency_unit: str = 'ms', supernet_metric: float | None = None):
        super().__init__(sample)
        self.probability = probability
        self.latency = latency
        self.latency_unit = latency_unit
        self.supernet_metric = supernet_metric

    def __repr__(self) -> str:
        latency = '' if self.latency is None else f', latency={self.latency:.3f} {self.latency_unit}'
        metric = '' if self.supernet_metric is None else f', supernet_metric={self.supernet_metric:.4g}'
        return f'Architecture({dict.__repr__(self)}, probability={self.probability:.4g}{latency}{metric})'


class ExportedModelSpace(RawFormatModelSpace):
    """One exported architecture, as NNI's ``export_top_models`` expects it.

    ``formatter='dict'`` gives :attr:`sample` (an :class:`Architecture`); ``formatter='instance'`` gives the subnet
    cut out of the supernet with its trained weights (:func:`~nni_proxyless.ops.subnet.subnet_of`), built when asked
    for, inside ``statistics(sample)`` when given (BatchNorm statistics recomputed for that architecture). The
    user's own ``model_space.freeze(architecture)`` rebuilds the subnet with fresh weights.
    """

    def __init__(self, searched: RawFormatModelSpace, supernet: nn.Module, architecture: Architecture,
                 statistics: Callable[[dict[str, Any]], Any] | None = None):
        super().__init__(searched.model_space, searched.evaluator)
        self.sample = architecture
        self.status = ModelStatus.Frozen
        self._supernet, self._statistics = supernet, statistics

    def executable_model(self) -> nn.Module:
        """The subnet with the supernet's trained weights (a new copy at each call)."""
        sample = dict(self.sample)
        if self._statistics is None:
            return subnet_of(self._supernet, sample)
        with self._statistics(sample):
            return subnet_of(self._supernet, sample)


def top_k(arch: ArchParameters, k: int, accept: Callable[[dict[str, Any]], bool] | None = None,
          max_visited: int = 100_000, warn: bool = True) -> list[Architecture]:
    """The ``k`` most probable architectures, most probable first (fewer when the space is smaller).

    Architectures of equal probability come in the order of their rank vectors (see the module docstring).

    Args:
        arch: the architecture parameters.
        k: how many.
        accept: keep only architectures it accepts (e.g. a latency limit); others are skipped in order.
        max_visited: with ``accept``, stop after this many architectures were considered (a warning says so
            when fewer than ``k`` were accepted by then, unless ``warn=False``); time and memory grow with it.

    Raises:
        ValueError: If ``k`` (or, with ``accept``, ``max_visited``) is not an integer >= 1.
    """
    k = _checks.integer('top_k', k, low=1)
    budget = k if accept is None else _checks.integer('max_visited', max_visited, low=1)
    search = _RankSearch(arch)
    results: list[Architecture] = []
    while len(results) < k and budget > 0:
        budget -= 1
        popped = search.pop(keep=budget)
        if popped is None:
            return results
        log_p, sample = popped
        if accept is None or accept(sample):
            results.append(Architecture(sample, math.exp(log_p)))
    if len(results) < k and search.heap and warn:
        _logger.warning('top_k: %d of the %d most probable architectures accepted, stopped after considering '
                        'max_visited=%d; raise max_visited to look further.', len(results), k, max_visited)
    return results


class _RankSearch:
    """Architectures in order of probability: best-first search over rank vectors.

    Each label's values are ranked by probability (:meth:`ArchParameters.ranked`); a state gives each label a
    rank, all 0 being the most probable architecture. A state's parent lowers its last non-zero rank by one, so
    its children raise one rank at a position at or after its last non-zero one: every state is created once,
    and never scores above its parent. A label unused under the values before it keeps rank 0 (its most
    probable value: the score the module docstring defines). States are stored sparse, as
    ``((-position, rank), ...)`` over their non-zero ranks, which orders them as their rank vectors.

    Attributes:
        heap: ``(-log-probability, state)`` of the states created and not yet popped.
        created: how many states were created (popped ones included).
    """

    def __init__(self, arch: ArchParameters):
        self.arch = arch
        self.order = _enclosing_first(arch)
        self.ranked = [arch.ranked(label) for label in self.order]
        self.heap: list[tuple[float, tuple[tuple[int, int], ...]]] = [(-sum(r[0][1] for r in self.ranked), ())]
        self.created = 1

    def pop(self, keep: int) -> tuple[float, dict[str, Any]] | None:
        """The next architecture (its log-probability and NNI sample), ``None`` when none is left.

        Args:
            keep: at most this many more pops will follow; the other states are dropped from the heap.
        """
        if not self.heap:
            return None
        neg_log_p, state = heapq.heappop(self.heap)
        ranks = {-position: rank for position, rank in state}
        sample, active = self._sample(ranks)
        last = -state[-1][0] if state else 0
        for position in range(last, len(self.order)):
            rank = ranks.get(position, 0)
            if active[position] and rank + 1 < len(self.ranked[position]):
                raised = state[:-1] if state and position == last else state
                drop = self.ranked[position][rank + 1][1] - self.ranked[position][rank][1]  # <= 0, exactly
                heapq.heappush(self.heap, (neg_log_p - drop, raised + ((-position, rank + 1),)))
                self.created += 1
        if 0 < keep < len(self.heap) // 2:  # only the best `keep` can still be popped
            self.heap = heapq.nsmallest(keep, self.heap)
        return -neg_log_p, sample

    def _sample(self, ranks: dict[int, int]) -> tuple[dict[str, Any], list[bool]]:
        """The NNI sample of a state (unused labels dropped) and whether each position's label is used."""
        sample: dict[str, Any] = {}
        active = []
        for position, label in enumerate(self.order):
            active.append(self.arch.is_active(label, sample))
            if active[-1]:
                sample[label] = self.ranked[position][ranks.get(position, 0)][0]
        return sample, active


def _enclosing_first(arch: ArchParameters) -> list[str]:
    """Labels ordered so that every label comes after the labels that enclose it."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(label: str) -> None:
        if label in order:
            return
        if label in visiting:
            raise ValueError(f'Label {label!r} encloses itself; the search space is cyclic.')
        visiting.add(label)
        for occurrence in arch.conditions.get(label, []):
            for condition in occurrence:
                for outer in condition.labels:
                    visit(outer)
        visiting.discard(label)
        order.append(label)

    for label in arch.labels():
        visit(label)
    return order
