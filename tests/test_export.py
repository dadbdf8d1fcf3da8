"""Exact top-k export against brute-force enumeration, with Repeat depth, nested choices, ties and filters; the
exported instance free of NNI and deployable by every route of docs/deploy.md."""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch
from torch import nn

from nni.nas.nn.pytorch import LayerChoice, ModelSpace, Repeat
from nni_proxyless import export
from nni_proxyless.arch import ArchParameters
from nni_proxyless.labels import Choice, Condition
from nni_proxyless.export import top_k
from nni_proxyless.supernet import build_supernet

from deploy_tools import ROUTES, DeploySpace, assert_deploys, assert_plain, deploy_exports


def _space(seed: int | None) -> ArchParameters:
    """depth in {1,2,3}; b1 used when depth > 1, b2 when depth > 2; 'inner' only when conv == 'a'.

    Random logits from ``seed``; ``None``: every logit 0 (every probability tied).
    """
    arch = ArchParameters(seed=0)
    for choice in [Choice('depth', 'value', (1, 2, 3)), Choice('b0', 'layer', ('x', 'y')),
                   Choice('b1', 'layer', ('x', 'y', 'z')), Choice('b2', 'layer', ('x', 'y')),
                   Choice('conv', 'layer', ('a', 'b')), Choice('inner', 'layer', (0, 1, 2))]:
        arch.register(choice)
    arch.add_occurrence('b1', (Condition(('depth',), frozenset({(2,), (3,)})),))
    arch.add_occurrence('b2', (Condition(('depth',), frozenset({(3,)})),))
    arch.add_occurrence('inner', (Condition(('conv',), frozenset({('a',)})),))
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for logit in arch.parameters():
                logit.copy_(torch.randn(len(logit), generator=gen) * 1.5)
    return arch


def _brute_force(arch: ArchParameters, accept=None) -> dict[tuple, float]:
    """Every full assignment, reduced to its used labels; a reduced one scores its most probable full assignment.

    With ``accept``, only the reduced assignments it accepts.
    """
    labels = arch.labels()
    probs = {l: torch.softmax(arch.logit(l).detach().double(), -1) for l in labels}
    totals: dict[tuple, float] = {}
    for values in itertools.product(*(arch.choices[l].values for l in labels)):
        full = dict(zip(labels, values))
        p = math.prod(probs[l][arch.choices[l].values.index(v)].item() for l, v in full.items())
        key = tuple(sorted((l, v) for l, v in full.items() if arch.is_active(l, full)))
        if accept is None or accept(dict(key)):
            totals[key] = max(totals.get(key, 0.0), p)
    return totals


def _assert_top(ours: list, truth: dict[tuple, float], k: int) -> None:
    """``ours`` holds the ``k`` best of ``truth`` with their scores, in order; among ties any may be cut off."""
    best = sorted(truth.values(), reverse=True)[:k]
    assert [a.probability for a in ours] == pytest.approx(best, rel=1e-9)
    keys = [tuple(sorted(a.items())) for a in ours]
    assert len(set(keys)) == len(keys)
    assert all(truth[key] == pytest.approx(a.probability, rel=1e-9) for key, a in zip(keys, ours))
    if len(best) == k:  # everything strictly above the k-th score is in
        assert {key for key, p in truth.items() if p > best[-1] * (1 + 1e-9)} <= set(keys)


@pytest.mark.parametrize('seed', range(5))
def test_top_k_equals_brute_force(seed):
    """The top 10 are the 10 best reduced architectures, in order, with their exact scores."""
    arch = _space(seed)
    truth = sorted(_brute_force(arch).items(), key=lambda kv: -kv[1])
    ours = top_k(arch, 10)
    assert [a.probability for a in ours] == pytest.approx([p for _, p in truth[:10]], rel=1e-9)
    truth_set = {key for key, p in truth if p >= truth[9][1] * (1 + 1e-9)}
    assert truth_set <= {tuple(sorted(a.items())) for a in ours}


def _tie(arch: ArchParameters) -> ArchParameters:
    """Exact ties within labels (``b1``: two of three values, ``conv``, ``inner``) and across them (``b0``,
    ``b2``); the other labels as drawn."""
    with torch.no_grad():
        arch.logit('b1').copy_(torch.tensor([0.5, -1.0, 0.5]))
        arch.logit('b0').copy_(torch.tensor([0.3, -0.2]))
        arch.logit('b2').copy_(torch.tensor([0.3, -0.2]))
        arch.logit('conv').zero_()
        arch.logit('inner').zero_()
    return arch


@pytest.mark.parametrize('k', [1, 5, 12, 40])
@pytest.mark.parametrize('seed', [None, 0, 1])
def test_top_k_equals_brute_force_under_ties(seed, k):
    """With exactly tied probabilities (all of them, or some within and across labels), the top k are still
    the k best reduced architectures with their exact scores, each once."""
    arch = _space(seed) if seed is None else _tie(_space(seed))
    _assert_top(top_k(arch, k), _brute_force(arch), k)


def test_ties_come_in_the_order_of_rank_vectors():
    """With every probability tied, the whole space comes in lexicographic order of the rank vectors (a label's
    rank is its value's index, ties going to the first candidate; unused labels at rank 0)."""
    arch = _space(None)
    labels = arch.labels()  # registered enclosing labels first

    def ranks(key: tuple) -> tuple:
        sample = dict(key)
        return tuple(arch.choices[l].values.index(sample[l]) if l in sample else 0 for l in labels)
    assert [ranks(tuple(sorted(a.items()))) for a in top_k(arch, 10_000)] == sorted(map(ranks, _brute_force(arch)))


@pytest.mark.parametrize('seed', [None, 0, 3])
def test_top_k_with_accept_equals_filtered_brute_force(seed):
    """With ``accept``, the result is the brute force's best accepted architectures, in order."""
    arch = _space(seed) if seed is None else _tie(_space(seed))

    def accept(sample):  # a stand-in latency limit: a cost per used block, conv 'a' costs more
        return sum(v != 'x' for l, v in sample.items() if l.startswith('b')) + (sample['conv'] == 'a') <= 1
    _assert_top(top_k(arch, 8, accept=accept), _brute_force(arch, accept), 8)


def test_accept_budget_warns_when_it_stops_early(caplog):
    """When ``max_visited`` architectures were considered before ``k`` were accepted, the few found are returned
    with a warning that names the budget; running out of architectures is not warned about here."""
    arch = _space(2)
    only = [tuple(sorted(a.items())) for a in top_k(arch, 10_000)]
    wanted = {only[3], only[7]}
    accept = lambda sample: tuple(sorted(sample.items())) in wanted  # noqa: E731
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        found = top_k(arch, 5, accept=accept, max_visited=6)
        assert [tuple(sorted(a.items())) for a in found] == [only[3]]
        assert 'max_visited=6' in caplog.text
        caplog.clear()
        assert len(top_k(arch, 5, accept=accept)) == 2 and not caplog.text


def _uniform_space(n_labels: int, n_values: int) -> ArchParameters:
    """``n_labels`` labels of ``n_values`` values, every probability tied; every third label is used only when the
    label before it takes its first value."""
    arch = ArchParameters(seed=0)
    for i in range(n_labels):
        arch.register(Choice(f'l{i}', 'layer', tuple(range(n_values))))
        if i % 3 == 2:
            arch.add_occurrence(f'l{i}', (Condition((f'l{i - 1}',), frozenset({(0,)})),))
    return arch


@pytest.mark.parametrize('k', [1, 10, 100])
def test_states_created_do_not_depend_on_ties(k, monkeypatch):
    """On a flat distribution over 4**60 architectures, k exports create at most k * (L + 1) search states."""
    searches = []

    class Counted(export._RankSearch):
        def __init__(self, arch):
            super().__init__(arch)
            searches.append(self)
    monkeypatch.setattr(export, '_RankSearch', Counted)
    arch = _uniform_space(60, 4)
    ours = top_k(arch, k)
    assert len({tuple(sorted(a.items())) for a in ours}) == k
    assert searches[0].created <= k * (60 + 1)


class _NestedSpace(ModelSpace):
    """NNI's own conditional choices: a Repeat depth over blocks that each choose an op, and an activation
    choice inside one candidate of that op."""

    def __init__(self):
        super().__init__()
        self.blocks = Repeat(lambda i: LayerChoice({
            'skip': nn.Identity(),
            'linear': nn.Sequential(nn.Linear(4, 4), LayerChoice({'tanh': nn.Tanh(), 'relu': nn.ReLU()},
                                                                label=f'act{i}'))}, label=f'op{i}'), (0, 2),
            label='depth')
        self.head = LayerChoice({'a': nn.Linear(4, 2), 'b': nn.Linear(4, 2)}, label='head')

    def forward(self, x):
        return self.head(self.blocks(x))


@pytest.mark.parametrize('seed', [None, 5])
def test_top_k_on_nni_conditional_labels(seed):
    """The conditions that the supernet records for NNI's Repeat and nested LayerChoice give the brute force's
    ranking, with flat and with random logits."""
    arch = ArchParameters(seed=0)
    build_supernet(_NestedSpace(), arch)
    assert {'depth', 'op0', 'act0', 'op1', 'act1', 'head'} == set(arch.labels())
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for logit in arch.parameters():
                logit.copy_(torch.randn(len(logit), generator=gen))
    truth = _brute_force(arch)
    assert len(truth) == 2 * (1 + 3 + 9)  # head x (depth 0, 1 and 2 blocks of skip / linear+tanh / linear+relu)
    _assert_top(top_k(arch, 40), truth, 40)


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


@pytest.fixture(scope='module')
def deploy_export():
    """The export (formatter='instance', eval mode) of DeploySpace at an architecture other than the first values,
    an input, and the architecture."""
    exported = deploy_exports()
    return exported.executable_model().eval(), torch.randn(2, 3, 6, 6), dict(exported.sample)


def test_instance_holds_nothing_of_nni(deploy_export):
    """The exported instance holds no NNI choice or expression (resolved to the architecture's ints, tuples...),
    none of NNI's bookkeeping, and torch layers where the space had NNI's Mutable<X>."""
    instance = deploy_export[0]
    assert_plain(instance)
    assert instance.widths == [8, 16] and type(instance.fixed) is nn.Conv2d and type(instance.head) is nn.Linear
    assert instance.stem.kernel_size == (5, 5) and len(instance.blocks) == 2


@pytest.mark.parametrize('route', ROUTES)
def test_instance_deploys(deploy_export, route, tmp_path):
    """Whole-module save and load, TorchScript, torch.export and ONNX give the instance's outputs."""
    instance, x, _ = deploy_export
    assert_deploys(route, instance, x, tmp_path)


def test_state_dict_loads_into_the_frozen_space(deploy_export):
    """The instance's state dict loads (strictly) into ``space.freeze(arch)`` of a new space, which then gives the
    instance's outputs: the first route of docs/deploy.md."""
    instance, x, architecture = deploy_export
    rebuilt = DeploySpace().freeze(architecture).eval()
    rebuilt.load_state_dict(instance.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(x), instance(x))
