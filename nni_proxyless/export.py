"""Exported architectures: the exact top-k under the product distribution ``P(m) = prod_l p_l(m_l)``.

Labels that an architecture does not use (blocks beyond a ``Repeat``'s chosen depth, choices inside an
unchosen ``LayerChoice`` candidate) are dropped from it, so two results never differ only in an unused label.
Architectures are ranked by the probability of their most probable full sample, i.e. with every unused label at
its most probable value: the product over used labels of ``p_l(m_l)`` times the product over unused labels of
``max p_l``. So the top-1 is the most probable value of every label (the argmax the search validates), and a
shallow architecture is not preferred merely for having fewer labels.

The search is best-first (A*) over labels taken in a fixed order, enclosing labels before the labels they
enclose. A partial architecture is ranked by its score so far plus the best log-probability of every remaining
label, which never underestimates; so architectures come out exactly in order.
"""

from __future__ import annotations

import heapq
import math
from itertools import count
from typing import Any, Callable

from torch import nn
from nni.nas.space import ModelStatus, RawFormatModelSpace

from . import _checks
from .arch import ArchParameters
from .ops.subnet import subnet_of

__all__ = ['Architecture', 'ExportedModelSpace', 'top_k']


class Architecture(dict):
    """An exported architecture: the dict ``model_space.freeze(...)`` takes, plus what the search knows of it.

    Attributes:
        probability: the probability of this architecture with its unused labels at their most probable values
            (the product over all labels; without ``Repeat`` or nested choices, simply its probability).
        latency: its predicted latency when the search had a latency table (else ``None``), in
            :attr:`latency_unit`.
        latency_unit: ``'ms'``, or ``'MFLOPs'`` with the FLOPs proxy.
    """

    def __init__(self, sample: dict[str, Any], probability: float, latency: float | None = None,
                 latency_unit: str = 'ms'):
        super().__init__(sample)
        self.probability = probability
        self.latency = latency
        self.latency_unit = latency_unit

    def __repr__(self) -> str:
        latency = '' if self.latency is None else f', latency={self.latency:.3f} {self.latency_unit}'
        return f'Architecture({dict.__repr__(self)}, probability={self.probability:.4g}{latency})'


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
          max_visited: int = 100_000) -> list[Architecture]:
    """The ``k`` most probable architectures, most probable first (fewer when the space is smaller).

    Args:
        arch: the architecture parameters.
        k: how many.
        accept: keep only architectures it accepts (e.g. a latency limit); others are skipped in order.
        max_visited: with ``accept``, stop after this many complete architectures were considered.
    """
    k = _checks.integer('top_k', k, low=1)
    order = _enclosing_first(arch)
    dists = {label: arch.ranked(label) for label in order}
    best = {label: dist[0][1] for label, dist in dists.items()}

    rest = [sum(best[label] for label in order[pos:]) for pos in range(len(order) + 1)]
    tie = count()
    heap = [(-rest[0], 0, next(tie), {}, 0.0)]
    results: list[Architecture] = []
    visited = 0
    while heap and len(results) < k and visited < max_visited:
        _, neg_pos, _, sample, log_p = heapq.heappop(heap)
        pos = -neg_pos
        while pos < len(order) and not arch.is_active(order[pos], sample):
            log_p += best[order[pos]]  # unused: counted at its most probable value
            pos += 1
        if pos == len(order):
            visited += 1
            if accept is None or accept(sample):
                results.append(Architecture(sample, math.exp(log_p)))
            continue
        label = order[pos]
        for value, log_q in dists[label]:
            child = {**sample, label: value}
            score = log_p + log_q
            heapq.heappush(heap, (-(score + rest[pos + 1]), -(pos + 1), next(tie), child, score))
    return results


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
