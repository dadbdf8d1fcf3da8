"""Architectures over a table's whole range: the extremes found by local search, the quantile spread, and the
calibration that times them."""

from __future__ import annotations

import itertools
import random

import torch

from nni_proxyless.latency import LatencyTable, Term, build_latency_table
from nni_proxyless.latency._extremes import extremes, spread

from latency.test_build import NestedSpace, WithWholeNetworkTwin, _flops


def _separable_table(labels: int = 12, values: int = 3, seed: int = 0) -> LatencyTable:
    """One cost per label value, plus a joint term of two labels that only adds (so the extremes stay separable):
    3^12 architectures, which a pool of random draws almost never contains the fastest or slowest of."""
    rng = random.Random(seed)
    names = {f'l{i}': list(range(values)) for i in range(labels)}
    terms = [Term(tuple(rng.uniform(0.1, 2.0) for _ in range(values)), (name,)) for name in names]
    return LatencyTable(labels=names, fixed=1.0, terms=terms)


def _draw(table: LatencyTable):
    return lambda rng: {label: rng.choice(values) for label, values in table.labels.items()}


def test_extremes_are_the_tables_fastest_and_slowest_two():
    """On a separable table, the fastest architecture takes each label's cheapest value and the second fastest
    differs from it in the one label with the smallest step up; the same for the slowest: local search finds
    exactly these, brute-forced per label."""
    table = _separable_table()
    for fastest in (True, False):
        pick = min if fastest else max
        best = {term.labels[0]: term.costs.index(pick(term.costs)) for term in table.terms}
        _, label, value = min((abs(c - pick(term.costs)), term.labels[0], v) for term in table.terms
                              for v, c in enumerate(term.costs) if v != best[term.labels[0]])
        found = extremes(table, _draw(table), table.labels, 2, fastest=fastest)
        assert found == [best, {**best, label: value}]


def test_spread_covers_the_pool_evenly():
    """The spread's first and last are the cheapest and dearest of its pool, and its predictions rise."""
    table = _separable_table()
    rng = random.Random(0)
    pool = [_draw(table)(rng) for _ in range(200)]
    picked = [table.predict(arch) for arch in spread(table, _draw(table), 8, pool=200)]
    assert picked == sorted(picked) and len(picked) == 8
    assert picked[0] == min(map(table.predict, pool)) and picked[-1] == max(map(table.predict, pool))


def test_calibration_times_the_spaces_fastest_and_slowest_architectures():
    """Among the whole networks a calibrating build times are the space's cheapest and dearest architectures
    (FLOPs of every architecture of the space, enumerated)."""
    predictor = WithWholeNetworkTwin(offset=0.5, scale=1.3)
    build_latency_table(NestedSpace(), predictor, (4, 8))
    timed = predictor.twin.priced
    space, x = NestedSpace(), torch.randn(4, 8)
    mutables = space.simplify()
    grids = [list(m.grid()) if label == 'skip' else list(m.values) for label, m in mutables.items()]
    every = [_flops(space.freeze(dict(zip(mutables, values))), x) for values in itertools.product(*grids)]
    assert min(every) in timed and max(every) in timed
