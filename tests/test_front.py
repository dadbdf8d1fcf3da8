"""One search, several budgets: ``export_top_models(latency_target=...)`` per call and ``Proxyless.latency_front``,
against brute force over every architecture of a small space and accuracies computed by hand."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from nni.nas.nn.pytorch import LayerChoice, ModelSpace, Repeat
from torch import nn

from nni_proxyless import Proxyless
from nni_proxyless.front import extreme_architectures

from conftest import ConvSpace, digits_accuracy, digits_evaluator, run_search

DOCS = Path(__file__).resolve().parents[1] / 'docs'
VALUES = {'conv1': ('k3', 'k5', 'skip'), 'conv2': ('k3', 'k1')}


def _every_architecture() -> list[dict[str, str]]:
    return [dict(zip(VALUES, values)) for values in itertools.product(*VALUES.values())]


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
    """A 1-epoch search of ConvSpace with the FLOPs table (no latency loss), and every architecture's probability
    and predicted MFLOPs."""
    torch.manual_seed(0)
    strategy = Proxyless(seed=0, applied_hardware='flops', dummy_input=(1, 1, 8, 8), grad_reg_loss_type=None,
                         bn_recalibration_batches=4)
    folder = tmp_path_factory.mktemp('search')
    evaluator = digits_evaluator(epochs=1, logger=True, default_root_dir=str(folder))  # the plots' folder
    exp = run_search(ConvSpace(batchnorm=True), strategy, evaluator, folder)
    with torch.no_grad():  # a distribution far from uniform, so that the probability order is unambiguous
        for label, logits in zip(strategy.arch.labels(), strategy.arch.parameters()):
            logits.copy_(torch.tensor([0.3, -0.6, 0.9][:len(logits)]))
    p = {label: dict(zip(VALUES[label], strategy.arch.probs(label).tolist())) for label in VALUES}
    archs = [(a, math.prod(p[label][a[label]] for label in a), strategy.latency_table.predict(a))
             for a in _every_architecture()]
    return exp, strategy, archs


def _within(archs, target):
    """Brute force: the architectures predicted within ``target``, the most probable first."""
    return [a for a, _, latency in sorted(archs, key=lambda x: -x[1]) if latency <= target]


def test_export_takes_a_latency_target_per_call(searched):
    """``exp.export_top_models(top_k, latency_target=T)`` returns the most probable architectures within ``T``,
    for two budgets in turn, though the strategy was built without a target."""
    exp, _, archs = searched
    latencies = sorted({latency for _, _, latency in archs})
    for target in (latencies[1], latencies[-2]):
        exported = exp.export_top_models(top_k=3, formatter='dict', latency_target=target)
        assert [dict(a) for a in exported] == _within(archs, target)[:3]
        assert all(a.latency <= target for a in exported)
    assert [dict(a) for a in exp.export_top_models(top_k=6, formatter='dict')] == _within(archs, math.inf)


def test_export_refuses_what_it_cannot_honour(searched):
    """An unknown keyword and an unreachable target are refused, naming the value and what is allowed."""
    exp, _, archs = searched
    with pytest.raises(TypeError, match="'latency_targt'.*latency_target") as unknown:
        exp.export_top_models(top_k=1, latency_targt=1.0)
    assert f'`TypeError: {unknown.value}`' in (DOCS / 'reliability.md').read_text()  # quoted as raised
    fastest = min(latency for _, _, latency in archs)
    with pytest.raises(ValueError, match='cannot be met'):
        exp.export_top_models(top_k=1, latency_target=fastest / 2)
    with pytest.raises(ValueError, match='latency_target must be a positive number'):
        exp.export_top_models(top_k=1, latency_target=-1)


def test_front_picks_the_most_probable_within_each_budget(searched):
    """By default: for each budget, the most probable architecture within it (brute force), with its latency and
    probability; ``evaluate=False`` leaves its metric unset."""
    _, strategy, archs = searched
    targets = sorted({latency for _, _, latency in archs})
    front = strategy.latency_front(targets, evaluate=False)
    assert [pick.target for pick in front] == targets
    for pick in front:
        assert dict(pick.architecture) == _within(archs, pick.target)[0] and pick.candidates == 1
        assert pick.architecture.latency <= pick.target and pick.architecture.supernet_metric is None
        probability = {tuple(a.items()): p for a, p, _ in archs}[tuple(pick.architecture.items())]
        assert pick.architecture.probability == pytest.approx(probability)


def test_front_ranks_candidates_by_the_accuracy_of_their_instances(searched):
    """``candidates=3``: each budget's pick is the most accurate of its 3 most probable architectures within it,
    by the accuracy of each exported instance computed by hand (ties: the more probable)."""
    exp, strategy, archs = searched
    accuracy = {}
    for target in sorted({latency for _, _, latency in archs}):  # each architecture's instance, as exported
        for instance, arch in zip(exp.export_top_models(top_k=6, formatter='instance', latency_target=target),
                                  _within(archs, target)):
            accuracy.setdefault(tuple(arch.items()), digits_accuracy(instance))
    assert len(accuracy) == len(archs)
    targets = sorted({latency for _, _, latency in archs})
    front = strategy.latency_front(targets, candidates=3)
    for pick in front:
        candidates = _within(archs, pick.target)[:3]
        best = max(candidates, key=lambda a: accuracy[tuple(a.items())])  # max keeps the first (most probable)
        assert dict(pick.architecture) == best and pick.candidates == len(candidates)
        assert pick.architecture.supernet_metric == pytest.approx(accuracy[tuple(best.items())], abs=1e-6)
    plots = Path(strategy.oneshot_module.trainer.log_dir)  # the search's other plots are there
    assert (plots / 'latency_front.png').is_file() and (plots / 'top_k.png').is_file()
    for pick in strategy.latency_front(targets):  # the default: the most probable, evaluated
        assert dict(pick.architecture) == _within(archs, pick.target)[0]
        assert pick.architecture.supernet_metric == pytest.approx(accuracy[tuple(pick.architecture.items())],
                                                                  abs=1e-6)
    with pytest.raises(ValueError, match='evaluate=False needs candidates=1'):
        strategy.latency_front(targets, candidates=3, evaluate=False)
    with pytest.raises(ValueError, match='cannot be met'):
        strategy.latency_front([min(targets) / 2], evaluate=False)


def test_default_budgets_span_the_table(searched):
    """Without targets: 5 increasing budgets, the last the slowest architecture's latency (brute force), the first
    above the fastest's, evenly spaced."""
    _, strategy, archs = searched
    latencies = [latency for _, _, latency in archs]
    front = strategy.latency_front(evaluate=False)
    targets = [pick.target for pick in front]
    assert len(targets) == 5 and targets[-1] == pytest.approx(max(latencies))
    step = (max(latencies) - min(latencies)) / 5
    assert targets == pytest.approx([min(latencies) + step * i for i in range(1, 6)])
    assert dict(front[-1].architecture) == _within(archs, math.inf)[0]


def test_front_needs_a_latency_table(tmp_path):
    """Without ``applied_hardware`` the front is refused with the fix."""
    strategy = Proxyless(seed=0)
    run_search(ConvSpace(), strategy, digits_evaluator(epochs=1), tmp_path)
    with pytest.raises(ValueError, match='applied_hardware') as refused:
        strategy.latency_front()
    assert f'`{refused.value}`' in (DOCS / 'reliability.md').read_text()


class DeepConvSpace(ModelSpace):
    """A Repeat of 1-3 blocks on 8x8 digits, each choosing a 1x1 or a 3x3 convolution: a block's label is used
    only when the depth reaches it."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.blocks = Repeat(lambda i: LayerChoice({'k1': nn.Conv2d(4, 4, 1), 'k3': nn.Conv2d(4, 4, 3, padding=1)},
                                                   label=f'block{i}'), (1, 3), label='depth')
        self.head = nn.Linear(4 * 64, 10)

    def forward(self, x):
        return self.head(torch.relu(self.blocks(torch.relu(self.stem(x)))).flatten(1))


def test_default_budgets_and_deploy_targets_on_a_searched_depth(tmp_path):
    """With a Repeat depth, the fastest and slowest architectures are found (brute force over every full sample:
    deepening a block needs that block's label), so the default budgets span the table, and a search with
    ``deploy_targets`` starts and picks, for each budget, the most probable architecture within it (brute force:
    the largest product of probabilities over every full sample within the budget, an unused label at its most
    probable value, is the pick's probability)."""
    strategy = Proxyless(seed=0, applied_hardware='flops', dummy_input=(1, 1, 8, 8), bn_recalibration_batches=0)
    run_search(DeepConvSpace(), strategy, digits_evaluator(epochs=1), tmp_path / 'plain')
    table, labels = strategy.latency_table, ['depth', 'block0', 'block1', 'block2']
    costs = [table.predict(dict(zip(labels, values)))
             for values in itertools.product([1, 2, 3], *[['k1', 'k3']] * 3)]
    fastest, slowest = (table.predict(a) for a in extreme_architectures(strategy.arch, table))
    assert (fastest, slowest) == (pytest.approx(min(costs)), pytest.approx(max(costs)))
    assert [pick.target for pick in strategy.latency_front(evaluate=False)][-1] == pytest.approx(max(costs))
    budgets = sorted(costs)[len(costs) // 4], sorted(costs)[len(costs) // 2]
    deployed = Proxyless(seed=0, applied_hardware='flops', dummy_input=(1, 1, 8, 8), bn_recalibration_batches=0,
                         deploy_targets=list(budgets))
    run_search(DeepConvSpace(), deployed, digits_evaluator(epochs=1), tmp_path / 'deployed')
    p = {label: deployed.arch.probs(label).tolist() for label in labels}
    values = {'depth': [1, 2, 3], **{label: ['k1', 'k3'] for label in labels[1:]}}
    samples = [dict(zip(labels, v)) for v in itertools.product(*values.values())]
    for pick in deployed.latency_front(evaluate=False):
        best = max(math.prod(p[label][values[label].index(a[label])] for label in labels)
                   for a in samples if table.predict(a) <= pick.target)
        assert pick.architecture.probability == pytest.approx(best)
