"""The architecture learning rate that fits the budget, and the warning when a search's distribution barely moved."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from nni_proxyless import Proxyless
from nni_proxyless.callbacks.convergence import NOISE_DRIFT, auto_arc_learning_rate

from conftest import ConvSpace, digits_evaluator, run_search


def _architecture_learning_rate(strategy: Proxyless) -> float:
    return strategy.oneshot_module.architecture_optimizers().optimizer.param_groups[0]['lr']


def test_auto_learning_rate_bounds_the_noise_drift_over_the_planned_steps(tmp_path):
    """3 epochs of 4 batches, the first epoch warm-up, an architecture step every 2 batches: 4 steps, so the rate
    is NOISE_DRIFT / sqrt(4) (noise moves a logit by about rate * sqrt(steps) = NOISE_DRIFT)."""
    strategy = Proxyless(warmup_epochs=1, arch_update_every=2, seed=0)
    run_search(ConvSpace(), strategy, digits_evaluator(epochs=3, limit_train_batches=4, limit_val_batches=0),
               tmp_path)
    assert _architecture_learning_rate(strategy) == pytest.approx(NOISE_DRIFT / 2)


def test_adam_steps_of_pure_noise_drift_by_the_bound():
    """The rule's premise, checked on the optimiser itself: Adam with the architecture step's settings at
    NOISE_DRIFT / sqrt(S), fed S gradients of pure noise (any scale), moves a logit by about NOISE_DRIFT (the
    root mean square over 2000 logits within 15%), and a constant gradient by NOISE_DRIFT * sqrt(S)."""
    gen = torch.Generator().manual_seed(0)
    for steps in (9, 100):
        for scale, consistent in ((1e-3, False), (10.0, False), (1.0, True)):
            logits = torch.zeros(2000, requires_grad=True)
            optimizer = torch.optim.Adam([logits], lr=auto_arc_learning_rate(steps), betas=(0.0, 0.999))
            for _ in range(steps):
                noise = torch.randn(2000, generator=gen)
                logits.grad = scale * (torch.ones(2000) if consistent else noise)
                optimizer.step()
            moved = float(logits.detach().pow(2).mean().sqrt())
            expected = NOISE_DRIFT * math.sqrt(steps) if consistent else NOISE_DRIFT
            assert moved == pytest.approx(expected, rel=0.15), (steps, scale, consistent, moved)


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
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):  # 'auto' bounds what noise can do
        run_search(ConvSpace(), Proxyless(seed=0), digits_evaluator(epochs=1, limit_val_batches=0),
                   tmp_path / 'auto')
    for warning in [r.getMessage() for r in caplog.records if 'barely moved' in r.getMessage()]:
        assert 'did not agree on a direction' in warning and 'warmup_epochs' in warning


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


def test_too_few_architecture_steps_are_warned_at_fit_start_and_do_not_collapse(tmp_path, caplog):
    """One epoch of 16 batches at arch_update_every=5: 3 architecture steps, so each of conv1's 3 candidates gets a
    gradient in about 3 * 2/3 = 2 of them (fewer than 5). The warning says so at fit start and gives the plan that
    reaches 5: ceil(5 / (2/3)) = 8 steps = max_epochs=3. The distribution stays within 10% of its maximum entropy
    (no collapse onto a few batches). Three epochs (9 steps, 6 per candidate) give no warning."""
    strategy = Proxyless(seed=0)
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        run_search(ConvSpace(), strategy, digits_evaluator(epochs=1, limit_val_batches=0), tmp_path / 'one')
    [warning] = [r.getMessage() for r in caplog.records if 'Too few architecture steps' in r.getMessage()]
    assert "plans 3," in warning and "label 'conv1'" in warning and 'about 2.0 times' in warning
    assert 'at least 8 architecture steps: max_epochs=3' in warning and 'arch_update_every=1' in warning
    uniform = math.log(3) + math.log(2)
    assert strategy.arch.entropy() >= 0.9 * uniform
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        run_search(ConvSpace(), Proxyless(seed=0), digits_evaluator(epochs=3, limit_val_batches=0), tmp_path / 'three')
    assert not [r for r in caplog.records if 'Too few architecture steps' in r.getMessage()]


def test_updates_per_candidate_count_the_gated_candidates_of_each_mode():
    """full_v2 gates all candidates at every step, two mode 2 of K, REINFORCE its samples' draws (hand counts)."""
    from nni_proxyless.callbacks.convergence import updates_per_candidate
    from nni_proxyless.labels import Choice
    choice = Choice('c', 'layer', tuple(range(5)))
    assert updates_per_candidate(choice, 10, binary_mode='two', reinforce_samples=None) == 4.0
    assert updates_per_candidate(choice, 10, binary_mode='full_v2', reinforce_samples=None) == 10.0
    assert updates_per_candidate(choice, 10, binary_mode='two', reinforce_samples=10) == 20.0
