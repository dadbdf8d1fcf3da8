"""``Proxyless(deploy_targets=[...])``: weight steps train paths drawn from the distribution restricted to each
budget in turn; exports and the front follow the budgets. Checked against brute force over every architecture of a
small space and its multiply-accumulates counted by hand."""

from __future__ import annotations

import collections
import itertools
import logging
import math
from pathlib import Path

import pytest
import torch

from nni_proxyless import Proxyless
from nni_proxyless._budget_paths import BudgetPaths
from nni_proxyless.latency import build_latency_table
from nni_proxyless.training import ProxylessModule

from conftest import ConvSpace, digits_evaluator, run_search

DOCS = Path(__file__).resolve().parents[1] / 'docs'
VALUES = {'conv1': ('k3', 'k5', 'skip'), 'conv2': ('k3', 'k1')}
WIDTH, PIXELS = 8, 8 * 8


def _macs(arch: dict[str, str]) -> int:
    """Multiply-accumulates of ConvSpace's searched layers on an 8x8 input, by hand: a k x k convolution from 8 to
    8 channels costs 64 pixels x 8 x 8 x k^2; a skip costs nothing."""
    kernel = {'k1': 1, 'k3': 3, 'k5': 5, 'skip': 0}
    return sum(PIXELS * WIDTH * WIDTH * kernel[value] ** 2 for value in arch.values())


def _every_architecture() -> list[dict[str, str]]:
    return [dict(zip(VALUES, values)) for values in itertools.product(*VALUES.values())]


SMALL = {'conv1': 'skip', 'conv2': 'k3'}  # the budgets: exactly what these two cost
MIDDLE = {'conv1': 'k3', 'conv2': 'k3'}


def _allowed(reference: dict[str, str]) -> list[dict[str, str]]:
    """Brute force: the architectures costing no more multiply-accumulates than ``reference``."""
    return [a for a in _every_architecture() if _macs(a) <= _macs(reference)]


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
    """A 2-epoch search of ConvSpace with the FLOPs table and the budgets of SMALL and MIDDLE, each weight step's
    path recorded."""
    table = build_latency_table(ConvSpace(), 'flops', (1, 1, 8, 8))
    budgets = [table.predict(SMALL), table.predict(MIDDLE)]
    paths: list[tuple[int, dict]] = []
    original = ProxylessModule.weight_path

    def recorded(module, step):
        selections = original(module, step)
        paths.append((step, module.arch.sample_of(selections)))
        return selections

    ProxylessModule.weight_path = recorded
    try:
        torch.manual_seed(0)
        strategy = Proxyless(seed=0, applied_hardware='flops', dummy_input=(1, 1, 8, 8), deploy_targets=budgets[::-1],
                             bn_recalibration_batches=4)
        exp = run_search(ConvSpace(), strategy, digits_evaluator(epochs=2), tmp_path_factory.mktemp('search'))
    finally:
        ProxylessModule.weight_path = original
    return exp, strategy, budgets, paths


def test_each_weight_step_trains_a_path_within_the_budget_of_its_turn(searched):
    """Every weight step is recorded once, in order; step t's path costs no more than the budget of turn t mod 2
    (smallest first, whatever order they were given in), by multiply-accumulates counted by hand; every
    architecture within a budget is trained at some turn of it, and none above the largest budget ever is."""
    _, strategy, _, paths = searched
    module = strategy.oneshot_module
    assert [step for step, _ in paths] == list(range(module.step_count)) and module.step_count > 20
    for step, path in paths:
        assert path in _allowed([SMALL, MIDDLE][step % 2]), (step, path)
    for turn, reference in enumerate([SMALL, MIDDLE]):
        trained = {tuple(path.items()) for step, path in paths if step % 2 == turn}
        assert trained == {tuple(a.items()) for a in _allowed(reference)}


def _validations(monkeypatch, tmp_path, **options) -> list[tuple[dict, dict]]:
    """A 2-epoch search of ConvSpace with the FLOPs table and ``options``: at each validation batch, the
    probabilities and the architecture routed."""
    validated = []
    validation_step = ProxylessModule.validation_step

    def recorded(module, batch, batch_idx):
        validated.append(({label: dict(zip(VALUES[label], module.arch.probs(label).tolist())) for label in VALUES},
                          {label: module.arch.routing.value(label) for label in VALUES}))
        return validation_step(module, batch, batch_idx)

    monkeypatch.setattr(ProxylessModule, 'validation_step', recorded)
    torch.manual_seed(0)
    strategy = Proxyless(seed=0, applied_hardware='flops', dummy_input=(1, 1, 8, 8), bn_recalibration_batches=4,
                         **options)
    run_search(ConvSpace(), strategy, digits_evaluator(epochs=2), tmp_path)
    return validated


@pytest.mark.parametrize('option', ['latency_target', 'deploy_targets'])
def test_validation_runs_the_top_export_within_the_limit(monkeypatch, tmp_path, option):
    """Each validation batch runs the search's top-1 export at that moment: the most probable architecture within
    ``latency_target`` (or the largest of ``deploy_targets``), by brute force over the probabilities then (ties:
    the first in the candidates' order, as the export's). After the first epoch, a warm-up, the logits are still
    equal, so the unconstrained most probable, what validation ran before, lies above the limit."""
    limit = build_latency_table(ConvSpace(), 'flops', (1, 1, 8, 8)).predict(SMALL)
    validated = _validations(monkeypatch, tmp_path, warmup_epochs=1,
                             **{option: limit if option == 'latency_target' else [limit]})
    assert len(validated) > 2
    above = 0
    for p, routed in validated:
        def probability(a):
            return math.prod(p[label][a[label]] for label in a)
        assert routed == max(_allowed(SMALL), key=probability)
        above += max(_every_architecture(), key=probability) not in _allowed(SMALL)
    assert above > 0


def test_the_restricted_draw_follows_the_distribution_within_the_budget(searched):
    """With the logits set far from uniform, the draws of one budget's turns have the frequencies of the
    distribution conditioned on the budget (brute force over every architecture), within sampling error; the same
    step draws the same path again."""
    _, strategy, budgets, _ = searched
    arch, table = strategy.arch, strategy.latency_table
    with torch.no_grad():
        for logits in arch.parameters():
            logits.copy_(torch.tensor([1.5, -0.5, 0.3][:len(logits)]))
    p = {label: dict(zip(VALUES[label], arch.probs(label).tolist())) for label in VALUES}
    within = _allowed(MIDDLE)
    mass = {tuple(a.items()): math.prod(p[label][a[label]] for label in a) for a in within}
    total = sum(mass.values())
    paths = BudgetPaths(budgets)
    draws = 4000
    counts = collections.Counter(tuple(arch.sample_of(paths.draw(arch, table, 2 * i + 1)).items())
                                 for i in range(draws))
    assert set(counts) <= set(mass)
    for key, m in mass.items():
        expected = m / total
        assert counts[key] / draws == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / draws))
    assert paths.draw(arch, table, 7) == paths.draw(arch, table, 7)


def test_a_budget_the_distribution_barely_reaches_trains_its_most_probable_architecture(searched, caplog):
    """With almost all probability above the small budget, its turns train the most probable architecture within
    it (brute force), said once in the log."""
    _, strategy, budgets, _ = searched
    arch, table = strategy.arch, strategy.latency_table
    with torch.no_grad():
        for label, logits in zip(arch.labels(), arch.parameters()):
            logits.copy_(torch.tensor({'conv1': [0.0, 20.0, -20.0], 'conv2': [20.0, 0.0]}[label]))
    p = {label: dict(zip(VALUES[label], arch.probs(label).tolist())) for label in VALUES}
    best = max(_allowed(SMALL), key=lambda a: math.prod(p[label][a[label]] for label in a))
    paths = BudgetPaths(budgets)
    with caplog.at_level(logging.INFO, logger='nni.proxyless'):
        drawn = [arch.sample_of(paths.draw(arch, table, 2 * i)) for i in range(5)]
    assert drawn == [best] * 5
    assert sum('little probability within' in r.getMessage() for r in caplog.records) == 1


def test_exports_and_front_follow_the_budgets(searched):
    """Without a latency_target, exports are limited to the largest budget (nothing above it was trained): the
    most probable within it, by brute force; ``latency_front()`` picks one per budget, smallest first."""
    exp, strategy, budgets, _ = searched
    arch = strategy.arch
    p = {label: dict(zip(VALUES[label], arch.probs(label).tolist())) for label in VALUES}

    def most_probable(reference):
        return max(_allowed(reference), key=lambda a: math.prod(p[label][a[label]] for label in a))

    assert dict(exp.export_top_models(top_k=1, formatter='dict')[0]) == most_probable(MIDDLE)
    front = strategy.latency_front(evaluate=False)
    assert [pick.target for pick in front] == budgets
    assert [dict(pick.architecture) for pick in front] == [most_probable(SMALL), most_probable(MIDDLE)]
    everything = exp.export_top_models(top_k=1, formatter='dict', latency_target=max(budgets) * 10)
    assert dict(everything[0]) == max(_every_architecture(), key=lambda a: math.prod(p[l][a[l]] for l in a))


@pytest.mark.parametrize('targets, message', [
    ([], 'deploy_targets must be a non-empty list of latency budgets in MFLOPs'),
    (0.5, 'deploy_targets must be a non-empty list of latency budgets in MFLOPs'),
    ([0.5, -1], r'deploy_targets\[1\] must be a positive number'),
    ([0.5, 0.5], 'deploy_targets must be distinct budgets'),
])
def test_bad_deploy_targets_are_refused_when_the_strategy_is_built(targets, message):
    with pytest.raises(ValueError, match=message):
        Proxyless(applied_hardware='flops', dummy_input=(1, 1, 8, 8), deploy_targets=targets)


def test_deploy_targets_need_a_latency_table_and_a_reachable_budget(tmp_path):
    """Without ``applied_hardware`` they are refused at once; a budget below the fastest architecture when the
    table is built, naming it and the fix (both quoted in docs/reliability.md)."""
    with pytest.raises(ValueError, match='deploy_targets needs applied_hardware') as no_table:
        Proxyless(deploy_targets=[1.0])
    strategy = Proxyless(seed=0, applied_hardware='flops', dummy_input=(1, 1, 8, 8), deploy_targets=[1e-6, 1.0])
    with pytest.raises(ValueError, match='The deploy_targets budget 1e-06 MFLOPs cannot be met') as unreachable:
        run_search(ConvSpace(), strategy, digits_evaluator(epochs=1), tmp_path)
    text = (DOCS / 'reliability.md').read_text()
    assert f'`{no_table.value}`' in text
    assert str(unreachable.value).split(':')[0] in text
