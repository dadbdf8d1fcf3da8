"""Exact top-k export against brute-force enumeration, with Repeat depth and nested choices."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nni_proxyless.arch import ArchParameters
from nni_proxyless.labels import Choice, Condition
from nni_proxyless.export import top_k


def _space(seed: int) -> ArchParameters:
    """depth in {1,2,3}; b1 used when depth > 1, b2 when depth > 2; 'inner' only when conv == 'a'."""
    arch = ArchParameters(seed=0)
    for choice in [Choice('depth', 'value', (1, 2, 3)), Choice('b0', 'layer', ('x', 'y')),
                   Choice('b1', 'layer', ('x', 'y', 'z')), Choice('b2', 'layer', ('x', 'y')),
                   Choice('conv', 'layer', ('a', 'b')), Choice('inner', 'layer', (0, 1, 2))]:
        arch.register(choice)
    arch.add_occurrence('b1', (Condition(('depth',), frozenset({(2,), (3,)})),))
    arch.add_occurrence('b2', (Condition(('depth',), frozenset({(3,)})),))
    arch.add_occurrence('inner', (Condition(('conv',), frozenset({('a',)})),))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for logit in arch.parameters():
            logit.copy_(torch.randn(len(logit), generator=gen) * 1.5)
    return arch


def _brute_force(arch: ArchParameters) -> dict[tuple, float]:
    """Every full assignment, reduced to its used labels; a reduced one scores its most probable full assignment."""
    labels = arch.labels()
    probs = {l: torch.softmax(arch.logit(l).detach().double(), -1) for l in labels}
    totals: dict[tuple, float] = {}
    for values in itertools.product(*(arch.choices[l].values for l in labels)):
        full = dict(zip(labels, values))
        p = math.prod(probs[l][arch.choices[l].values.index(v)].item() for l, v in full.items())
        key = tuple(sorted((l, v) for l, v in full.items() if arch.is_active(l, full)))
        totals[key] = max(totals.get(key, 0.0), p)
    return totals


@pytest.mark.parametrize('seed', range(5))
def test_top_k_equals_brute_force(seed):
    """The top 10 are the 10 best reduced architectures, in order, with their exact scores."""
    arch = _space(seed)
    truth = sorted(_brute_force(arch).items(), key=lambda kv: -kv[1])
    ours = top_k(arch, 10)
    assert [a.probability for a in ours] == pytest.approx([p for _, p in truth[:10]], rel=1e-9)
    truth_set = {key for key, p in truth if p >= truth[9][1] * (1 + 1e-9)}
    assert truth_set <= {tuple(sorted(a.items())) for a in ours}


def test_top_k_is_distinct_and_ordered():
    """No two exports are equal, none carries an unused label, probabilities never increase."""
    arch = _space(7)
    ours = top_k(arch, 40)
    assert len({tuple(sorted(a.items())) for a in ours}) == 40
    assert all(x.probability >= y.probability for x, y in zip(ours, ours[1:]))
    for a in ours:
        assert all(arch.is_active(label, a) for label in a)
        assert ('b2' in a) == (a['depth'] == 3)


def test_top_k_covers_small_space():
    """Asking for more than the space holds returns every reduced architecture exactly once."""
    arch = _space(1)
    everything = top_k(arch, 10_000)
    assert sorted(tuple(sorted(a.items())) for a in everything) == sorted(_brute_force(arch))


@pytest.mark.parametrize('seed', range(5))
def test_top_1_is_the_argmax_of_every_used_label(seed):
    """The first export is the most probable value of each label (unused labels dropped)."""
    arch = _space(seed)
    argmax = arch.argmax()
    best = top_k(arch, 1)[0]
    assert best == {label: value for label, value in argmax.items() if arch.is_active(label, argmax)}


@pytest.mark.parametrize('k', [0, -1, 2.5, None])
def test_top_k_must_be_positive(k):
    """top_k <= 0 (or not an integer) is refused with the value named."""
    with pytest.raises(ValueError, match=f'top_k must be an integer >= 1, got {k!r}.'):
        top_k(_space(0), k)
