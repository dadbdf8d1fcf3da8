"""Architectures spread over a table's whole latency range: its fastest, its slowest, and the range between.

A table's calibration (:mod:`._calibration`) and its validation are only as good as the architectures they rest
on. Random architectures sit in the middle of the range, while users pick at its ends (the fastest that meets a
target, the largest that fits). So the calibration times the table's fastest and slowest architectures besides
random ones spread over the range, and the latency benchmarks validate on the same kind of sample.

The extremes are found by local search on the table's own predictions: from the fastest (or slowest) of a random
pool, change one label at a time to its best value until no single change helps. A term's cost depends jointly on
a few labels (kernel x widths), so this is a local optimum; the pool's best starts make it a good one.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from .table import LatencyTable

__all__ = ['Draw', 'extremes', 'spread']

Draw = Callable[[random.Random], dict[str, Any]]
"""Draws a random architecture (an NNI sample) of the space with the given generator."""


def extremes(table: LatencyTable, draw: Draw, searched: dict[str, list], count: int, *, fastest: bool,
             seed: int = 0, pool: int = 200) -> list[dict[str, Any]]:
    """The ``count`` fastest (or slowest) distinct architectures found: local optima of the table's predictions
    started from the best of ``pool`` random draws, and the one-label neighbours of the best of them.

    Args:
        table: predicts each architecture's latency.
        draw: a random architecture from a generator.
        searched: the labels local search may change, with their values (labels with one value per sample).
        count: how many architectures.
        fastest: the fastest (else the slowest).
        seed: seeds the pool.
        pool: random architectures drawn to start from.
    """
    sign = 1.0 if fastest else -1.0
    rng = random.Random(seed)
    starts = sorted((draw(rng) for _ in range(pool)), key=lambda arch: sign * table.predict(arch))
    found = [_local_optimum(table, start, searched, sign) for start in starts[:max(count, 3)]]
    best = min(found, key=lambda arch: sign * table.predict(arch))
    found += [{**best, label: value} for label, values in searched.items() for value in values]
    unique = {_key(arch): arch for arch in found}
    return sorted(unique.values(), key=lambda arch: sign * table.predict(arch))[:count]


def spread(table: LatencyTable, draw: Draw, count: int, *, seed: int = 0, pool: int = 200) -> list[dict[str, Any]]:
    """``count`` random architectures at evenly spaced quantiles of the table's predictions over ``pool`` draws
    (the cheapest and the dearest of the pool included when ``count >= 2``)."""
    rng = random.Random(seed)
    ranked = sorted((draw(rng) for _ in range(max(pool, count))), key=table.predict)
    if count == 1:
        return [ranked[len(ranked) // 2]]
    return [ranked[round(i * (len(ranked) - 1) / (count - 1))] for i in range(count)]


def _local_optimum(table: LatencyTable, arch: dict[str, Any], searched: dict[str, list], sign: float
                   ) -> dict[str, Any]:
    arch, score = dict(arch), sign * table.predict(arch)
    improved = True
    while improved:
        improved = False
        for label, values in searched.items():
            for value in values:
                candidate = {**arch, label: value}
                candidate_score = sign * table.predict(candidate)
                if candidate_score < score - 1e-12 * abs(score):
                    arch, score, improved = candidate, candidate_score, True
    return arch


def _key(arch: dict[str, Any]) -> tuple:
    return tuple(sorted((label, repr(value)) for label, value in arch.items()))
