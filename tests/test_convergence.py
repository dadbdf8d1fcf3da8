"""The architecture learning rate that fits the budget, and the warning when a search's distribution barely moved."""

from __future__ import annotations

import logging

import pytest
import torch

from nni_proxyless import Proxyless
from nni_proxyless.convergence import auto_arc_learning_rate

from conftest import ConvSpace, digits_evaluator, run_search


def _architecture_learning_rate(strategy: Proxyless) -> float:
    return strategy.oneshot_module.architecture_optimizers().optimizer.param_groups[0]['lr']


def test_auto_learning_rate_spreads_ten_logit_units_over_the_planned_steps(tmp_path):
    """3 epochs of 4 batches, the first epoch warm-up, an architecture step every 2 batches: 4 steps, lr 10 / 4."""
    strategy = Proxyless(warmup_epochs=1, arch_update_every=2, seed=0)
    run_search(ConvSpace(), strategy, digits_evaluator(epochs=3, limit_train_batches=4, limit_val_batches=0),
               tmp_path)
    assert _architecture_learning_rate(strategy) == pytest.approx(2.5)


def test_official_learning_rate_is_one_argument_away(tmp_path):
    """arc_learning_rate=1e-3 is used as given; long searches get it from 'auto' too; bad values are refused."""
    strategy = Proxyless(arc_learning_rate=1e-3, seed=0)
    run_search(ConvSpace(), strategy, digits_evaluator(epochs=1, limit_train_batches=4, limit_val_batches=0),
               tmp_path)
    assert _architecture_learning_rate(strategy) == 1e-3
    assert auto_arc_learning_rate(100_000) == 1e-3 and auto_arc_learning_rate(float('inf')) == 1e-3
    for bad in ('fast', 0, -1e-3):
        with pytest.raises(ValueError, match="arc_learning_rate must be a positive number or 'auto'"):
            Proxyless(arc_learning_rate=bad)


def test_a_distribution_that_barely_moved_is_reported_with_the_fix(tmp_path, caplog):
    """At the official rate a short search leaves the distribution near uniform: a warning names the fix."""
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        run_search(ConvSpace(), Proxyless(arc_learning_rate=1e-3, seed=0),
                   digits_evaluator(epochs=1, limit_val_batches=0), tmp_path / 'official')
    [warning] = [r.getMessage() for r in caplog.records if 'barely moved' in r.getMessage()]
    assert "arc_learning_rate='auto'" in warning and 'arc_learning_rate=0.001' in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        run_search(ConvSpace(), Proxyless(seed=0), digits_evaluator(epochs=1, limit_val_batches=0),
                   tmp_path / 'auto')
    assert not any('barely moved' in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize('warmup, epochs', [(2, 2), (3, 2)])
def test_warmup_that_leaves_no_architecture_step_is_warned_at_fit_start(tmp_path, caplog, warmup, epochs):
    """warmup_epochs >= max_epochs: a warning at fit start names both values and the fix; the logits stay 0."""
    strategy = Proxyless(seed=0, warmup_epochs=warmup)
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        run_search(ConvSpace(), strategy, digits_evaluator(epochs=epochs), tmp_path)
    warned = [r.getMessage() for r in caplog.records if 'leaves no architecture step' in r.getMessage()]
    assert len(warned) == 1 and f'warmup_epochs={warmup} ' in warned[0] and f'max_epochs={epochs} ' in warned[0]
    assert 'smaller than max_epochs' in warned[0]
    assert all(float(p.abs().max()) == 0 for p in strategy.arch.parameters())


def test_warmup_shorter_than_the_search_runs(tmp_path, caplog):
    """warmup_epochs=1 of max_epochs=2: no warning, and the architecture moves (in the second epoch)."""
    strategy = Proxyless(seed=0, warmup_epochs=1, arch_update_every=1)
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        run_search(ConvSpace(), strategy, digits_evaluator(epochs=2), tmp_path)
    assert len(strategy.oneshot_module.reports) == 2
    assert not [r for r in caplog.records if 'leaves no architecture step' in r.getMessage()]
    assert any(float(p.abs().max()) > 0 for p in strategy.arch.parameters())
