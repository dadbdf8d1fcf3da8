"""ArchParameters: sampling, the two-mode rescale, shared labels."""

from __future__ import annotations

import math

import pytest
import torch

from nni_proxyless.arch import ArchParameters
from nni_proxyless.labels import Choice


def _arch(logits: list[float], label: str = 'op') -> ArchParameters:
    arch = ArchParameters(seed=0)
    arch.register(Choice(label, 'layer', tuple(range(len(logits)))))
    with torch.no_grad():
        arch.logit(label).copy_(torch.tensor(logits))
    return arch


def test_rescale_keeps_unsampled_probabilities():
    """After an optimiser step on a sampled pair and the rescale, the other candidates' probabilities are unchanged."""
    arch = _arch([0.3, -1.0, 0.7, 0.1, -0.4])
    before_probs = arch.probs('op').clone()
    pairs = {'op': (1, 3)}
    snapshot = arch.snapshot(pairs)
    with torch.no_grad():                     # an arbitrary step on the pair
        arch.logit('op')[1] += 0.9
        arch.logit('op')[3] -= 0.2
    arch.rescale(pairs, snapshot)
    after = arch.probs('op')
    for k in (0, 2, 4):
        assert after[k].item() == pytest.approx(before_probs[k].item(), rel=1e-6)
    # the pair's total mass is unchanged and its ratio follows the step: exp(0.9 + 0.2) times the old ratio
    assert (after[1] + after[3]).item() == pytest.approx((before_probs[1] + before_probs[3]).item(), rel=1e-6)
    ratio = (after[1] / after[3]).item() / (before_probs[1] / before_probs[3]).item()
    assert ratio == pytest.approx(math.exp(1.1), rel=1e-5)


def test_two_mode_draws_pair_by_probability():
    """Pairs are drawn without replacement from p: a candidate with probability 0.9 is in almost every pair."""
    arch = _arch([math.log(0.9), math.log(0.05), math.log(0.05)])
    hits = sum(0 in arch.sample_for_update(step, 'two')['op'].support for step in range(400))
    # P(candidate 0 in a pair of draws without replacement) = 0.9 + 0.05 * 0.9/0.95 * 2 = 0.9947...
    assert hits >= 390


def test_two_mode_draws_the_active_candidate_from_the_pair_softmax():
    """In two mode the active candidate of a drawn pair {i, j} is i with probability q_i = exp(a_i) / (exp(a_i) +
    exp(a_j)). Over 5 seeds x 2000 steps, every (seed, pair) drawn at least 100 times has the frequency of its first
    candidate within 4 sigma of q; a uniform or a fixed choice within the pair would miss most of them."""
    logits = [1.0, -0.5, 0.3, -1.2]
    checked = within = 0
    for seed in range(5):
        arch = _arch(logits)
        arch.seed = seed
        counts: dict[tuple[int, int], list[int]] = {}
        for step in range(2000):
            selection = arch.sample_for_update(step, 'two')['op']
            pair = tuple(sorted(selection.support))
            assert len(pair) == 2 and selection.active[0] in pair and selection.gated == selection.support
            tally = counts.setdefault(pair, [0, 0])
            tally[0] += selection.active[0] == pair[0]
            tally[1] += 1
        for (i, j), (hits, total) in counts.items():
            if total >= 100:
                q = math.exp(logits[i]) / (math.exp(logits[i]) + math.exp(logits[j]))
                checked += 1
                within += abs(hits / total - q) < 4 * math.sqrt(q * (1 - q) / total)
    assert checked >= 20 and within == checked, (within, checked)


def test_weight_step_sampling_follows_probabilities():
    """Weight-step paths are drawn from softmax(logits): frequencies within 4 sigma of p over 4000 steps."""
    p = torch.tensor([0.5, 0.3, 0.2])
    arch = _arch(p.log().tolist())
    counts = torch.zeros(3)
    for step in range(4000):
        counts[arch.sample(step)['op'].active[0]] += 1
    sigma = (p * (1 - p) / 4000).sqrt()
    assert ((counts / 4000 - p).abs() < 4 * sigma).all()


def test_batched_draws_follow_the_same_law_as_single_draws():
    """``samples(step, phase, n)``: a one-candidate label's frequencies within 4 sigma of p over 4000 draws; an
    InputChoice taking 2 of 3 inputs draws them distinct, each pair as often as the law of ``sample`` (single
    draws at 4000 phases) within 4 sigma; the same step and phase give the same draws."""
    p = torch.tensor([0.5, 0.3, 0.2])
    arch = _arch(p.log().tolist())
    arch.register(Choice('inp', 'input', (0, 1, 2), n_chosen=2))
    with torch.no_grad():
        arch.logit('inp').copy_(torch.tensor([0.8, 0.0, -0.8]))
    batched = list(arch.samples(0, 100, 4000))
    counts = torch.zeros(3)
    for drawn in batched:
        counts[drawn['op'].active[0]] += 1
    assert ((counts / 4000 - p).abs() < 4 * (p * (1 - p) / 4000).sqrt()).all()
    pairs = [tuple(sorted(drawn['inp'].active)) for drawn in batched]
    single = [tuple(sorted(arch.sample(0, phase)['inp'].active)) for phase in range(200, 4200)]
    assert all(a != b for a, b in pairs)
    for pair in {(0, 1), (0, 2), (1, 2)}:
        q = single.count(pair) / 4000
        assert abs(pairs.count(pair) / 4000 - q) < 4 * math.sqrt(2 * q * (1 - q) / 4000)
    assert list(arch.samples(0, 100, 4000)) == batched


def test_same_seed_and_step_same_paths():
    """Two stores with one seed draw the same paths at the same step, and different ones at other steps."""
    a, b = _arch([0.0] * 6), _arch([0.0] * 6)
    assert [a.sample(s)['op'].active for s in range(20)] == [b.sample(s)['op'].active for s in range(20)]
    assert len({a.sample(s)['op'].active for s in range(20)}) > 1


def test_shared_label_must_match():
    """A label registered twice with other candidates is refused with both descriptions."""
    arch = _arch([0.0, 0.0])
    arch.register(Choice('op', 'layer', (0, 1)))  # same: shared
    with pytest.raises(ValueError, match="'op' is shared by choices that differ"):
        arch.register(Choice('op', 'layer', (0, 1, 2)))


def test_subset_probability_is_the_sampling_law():
    """An InputChoice taking 2 of 3 inputs: each subset's probability is that of two draws without replacement."""
    arch = ArchParameters(seed=0)
    arch.register(Choice('inp', 'input', (0, 1, 2), n_chosen=2))
    p = [0.6, 0.3, 0.1]
    with torch.no_grad():
        arch.logit('inp').copy_(torch.tensor(p).log())
    dist = dict((tuple(v), math.exp(lp)) for v, lp in arch.ranked('inp'))
    expected = {(i, j): p[i] * p[j] / (1 - p[i]) + p[j] * p[i] / (1 - p[j]) for i, j in [(0, 1), (0, 2), (1, 2)]}
    assert dist == pytest.approx(expected)
    assert sum(dist.values()) == pytest.approx(1.0)
