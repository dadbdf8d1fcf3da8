"""The calibration fit: whole-network timings against the table's times and weight megabytes."""

from __future__ import annotations

import torch

from nni_proxyless.latency._calibration import _fit, _left_out_error


def _data(per_megabyte: float, noise: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sums = (1 + 5 * torch.rand(11, generator=g, dtype=torch.float64)).tolist()
    weights = (60 * torch.rand(11, generator=g, dtype=torch.float64)).tolist()
    wholes = [0.3 + 1.2 * s + per_megabyte * w + noise * float(torch.randn(1, generator=g, dtype=torch.float64))
              for s, w in zip(sums, weights)]
    return sums, weights, wholes


def test_left_out_error_equals_refitting_without_each_point():
    """PRESS from the leverages equals the squared errors of 11 explicit fits, each without one point."""
    sums, weights, wholes = _data(0.05, 0.2)
    design = torch.tensor([[1.0, s, w] for s, w in zip(sums, weights)], dtype=torch.float64)
    target = torch.tensor(wholes, dtype=torch.float64)
    brute = 0.0
    for i in range(len(wholes)):
        keep = [j for j in range(len(wholes)) if j != i]
        coef = torch.linalg.lstsq(design[keep], target[keep, None]).solution.flatten()
        brute += float(target[i] - design[i] @ coef) ** 2
    assert abs(_left_out_error(design, target) - brute) < 1e-9 * brute


def test_weights_term_is_fitted_when_timings_depend_on_it():
    fixed, scale, per_megabyte = _fit(*_data(0.05, 0.01))
    assert abs(fixed - 0.3) < 0.05 and abs(scale - 1.2) < 0.02 and abs(per_megabyte - 0.05) < 0.002


def test_weights_term_is_left_out_when_it_explains_only_noise():
    """Timings that do not depend on the weights: the term would fit noise, so b = 0 and s is the plain fit."""
    sums, weights, wholes = _data(0.0, 0.05, seed=13)  # unselected, b would come out at +0.0016
    fixed, scale, per_megabyte = _fit(sums, weights, wholes)
    assert per_megabyte == 0.0
    relative = torch.tensor([[1.0 / n, s / n] for s, n in zip(sums, wholes)], dtype=torch.float64)
    plain = torch.linalg.lstsq(relative, torch.ones(len(sums), 1, dtype=torch.float64)).solution.flatten()
    assert abs(fixed - float(plain[0])) < 1e-9 and abs(scale - float(plain[1])) < 1e-9


def test_fit_weighs_every_timing_by_its_relative_error():
    """Timings over a 20-fold range (a table's fastest and slowest architectures among them) that a line fits
    only approximately: the fit misses none by 10%, where plain least squares, pulled by the slowest networks,
    misses the fastest by over 20%; and the ends are kept, though the others' fit misses them most."""
    sums = [5.4, 1.5, 28.0, 2.5, 4.0, 4.7, 5.3, 5.7, 6.4, 7.5, 9.7]
    wholes = [0.3 + s * (1 + 0.006 * s) for s in sums]
    fixed, scale, _ = _fit(sums, [0.0] * len(sums), wholes)
    assert max(abs((fixed + scale * s) / n - 1) for s, n in zip(sums, wholes)) < 0.10
    design = torch.tensor([[1.0, s] for s in sums], dtype=torch.float64)
    plain = torch.linalg.lstsq(design, torch.tensor(wholes, dtype=torch.float64)[:, None]).solution.flatten()
    assert (float(plain[0]) + float(plain[1]) * 1.5) / wholes[1] - 1 < -0.20


def test_a_disturbed_timing_is_left_out_of_the_fit():
    """Ten timings on N = 0.3 + 1.2 S + 0.05 W and one 30% too slow, where the weights' term could bend towards
    it: the fit drops that timing and finds the model; least squares over all eleven does not."""
    sums, weights, wholes = _data(0.05, 0.0, seed=1)
    worst = max(range(len(weights)), key=weights.__getitem__)
    wholes[worst] *= 1.3
    fixed, scale, per_megabyte = _fit(sums, weights, wholes)
    assert abs(fixed - 0.3) < 1e-6 and abs(scale - 1.2) < 1e-6 and abs(per_megabyte - 0.05) < 1e-6
    design = torch.tensor([[1.0, s, w] for s, w in zip(sums, weights)], dtype=torch.float64)
    plain = torch.linalg.lstsq(design, torch.tensor(wholes, dtype=torch.float64)[:, None]).solution.flatten()
    assert abs(float(plain[2]) - 0.05) > 0.005
