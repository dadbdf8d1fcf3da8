"""Calibration of a measured table to whole-network timings (step 4 of :mod:`.build`).

A module timed alone runs faster than inside the network. Two causes, measured on MobileNetV3 and ProxylessNAS
spaces at batch 1 on the CPU: the work itself is slower in context (caches shared with the other layers), and,
above all, a module timed alone finds its weights in the cache, while in the network each layer reads its weights
from memory once per forward (a 1x1 convolution with 5 MB of weights on a 1x1 map: 110 us alone, 466 us with the
caches flushed). The second cost grows with the bytes of weights a layer reads, not with its time alone, so one
scale factor cannot fit both a wide 1x1 layer and a depthwise one. The fit is therefore

    N = fixed + s * S + b * W

over whole-network timings ``N`` of a few architectures, where ``S`` is the table's sum of the choices' times on
that architecture and ``W`` the sum of their weights' megabytes (parameters and buffers, a second table of the same
terms). Each term's cost becomes ``s * time + b * megabytes``. The fit keeps ``b = 0`` unless the weights' term
predicts the timings each left out of the fit better (their weights may all fit in the cache, or cost nothing
extra on this device), comes out non-negative, and leaves ``s`` plausible. Before fitting, timings that the fit of
the others misses by far (disturbed by other work on the machine) are left out, a quarter of them at most.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import nn

from .protocol import LatencyPredictor, ModuleCall
from .table import LatencyTable, Term

__all__ = ['CALIBRATION_PATHS', 'WithWeightMegabytes', 'calibrated']

_logger = logging.getLogger('nni.proxyless')

CALIBRATION_PATHS = 10
"""Random architectures timed as whole networks for the fit (besides the reference architecture)."""

_PLAUSIBLE_SCALE = (0.5, 2.0)


def weight_megabytes(module: nn.Module) -> float:
    """Megabytes of a module's parameters and buffers (what a forward reads besides its input)."""
    tensors = {t.data_ptr(): t for t in [*module.parameters(), *module.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values()) / 2 ** 20


class WithWeightMegabytes:
    """A predictor that prices each call as ``(source's price, the call's weight megabytes)``."""

    def __init__(self, source: LatencyPredictor):
        self.source, self.unit, self.description = source, source.unit, source.description

    def predict(self, calls: Sequence[ModuleCall]) -> list[tuple[float, float]]:
        """The source's prices, each paired with its call's :func:`weight_megabytes`."""
        return list(zip(self.source.predict(calls), (weight_megabytes(call.module) for call in calls)))


def calibrated(table: LatencyTable, megabytes: LatencyTable, paths: list[dict], wholes: list[float]
               ) -> LatencyTable:
    """``table`` fitted to the whole-network prices ``wholes`` of the architectures ``paths`` (module docstring).

    Args:
        table: the choices' times alone.
        megabytes: the same terms, costing each choice's weight megabytes.
        paths: architectures (NNI samples), the first the reference one.
        wholes: their whole-network prices.

    Returns ``table`` unchanged when the paths' costs differ too little to fit, or when even ``b = 0`` gives an
    implausible ``s`` (outside 0.5-2: the machine was busy).
    """
    sums = [table.predict(path) - table.fixed for path in paths]
    weights = [megabytes.predict(path) - megabytes.fixed for path in paths]
    if max(sums) - min(sums) < 0.1 * max(abs(sums[0]), 1e-12):
        return table
    fixed, scale, per_megabyte = _fit(sums, weights, wholes)
    if not _PLAUSIBLE_SCALE[0] <= scale <= _PLAUSIBLE_SCALE[1]:
        _logger.warning('Latency calibration skipped: whole-network timings imply a factor of %.2f between '
                        'modules timed alone and in the network (expected 0.5-2); the machine was probably busy.',
                        scale)
        return table
    _logger.info('Latency calibrated on %d whole-network timings: candidate costs x%.3f plus %.4f %s per MB of '
                 'weights, fixed part %.3f -> %.3f %s.', len(paths), scale, per_megabyte, table.unit, table.fixed,
                 fixed, table.unit)
    terms = [Term(tuple(scale * t + per_megabyte * m for t, m in zip(term.costs, weight.costs)), term.labels,
                  term.when) for term, weight in zip(table.terms, megabytes.terms, strict=True)]
    return LatencyTable(labels=table.labels, fixed=fixed, terms=terms, unit=table.unit, hardware=table.hardware,
                        dummy_input=table.dummy_input)


def _fit(sums: list[float], weights: list[float], wholes: list[float]) -> tuple[float, float, float]:
    """Least squares of the relative errors of ``wholes ~ fixed + s * sums (+ b * weights)`` over the timings
    that are no outliers: the weights' term is kept when it predicts left-out timings better (leave-one-out
    error), with ``b >= 0`` and a plausible ``s``; else ``b = 0``.

    Relative errors, because the timings span the table's range (a 30-fold one on MobileNetV3 at 32x32), and what
    counts is each architecture's relative error: absolute residuals would let the slowest networks pull the fit
    and the fastest ones fall out of it as outliers. Each row is divided by its timing, so that every step below
    (outliers, least squares, leave-one-out error) works on relative errors."""
    n = torch.tensor(wholes, dtype=torch.float64)
    with_weights = torch.tensor([[1.0, s, w] for s, w in zip(sums, weights)], dtype=torch.float64) / n[:, None]
    n = torch.ones_like(n)
    ends = {min(range(len(sums)), key=sums.__getitem__), max(range(len(sums)), key=sums.__getitem__)}
    kept = _without_outliers(with_weights, n, ends)
    with_weights, n = with_weights[kept], n[kept]
    without = with_weights[:, :2]
    fixed, scale, per_megabyte = _least_squares(with_weights, n)
    if per_megabyte >= 0 and _PLAUSIBLE_SCALE[0] <= scale <= _PLAUSIBLE_SCALE[1] and \
            _left_out_error(with_weights, n) < _left_out_error(without, n):
        return fixed, scale, per_megabyte
    fixed, scale = _least_squares(without, n)
    return fixed, scale, 0.0


def _without_outliers(design: torch.Tensor, target: torch.Tensor, ends: set[int]) -> list[int]:
    """Indices of the timings left after dropping, one at a time and at most a quarter of them, the one that the
    fit of the others misses most, if by more than 5% and more than 3 times the median miss of the others (a
    timing disturbed by another process; judged by the fit without it, so that it cannot bend the fit). The
    ``ends`` (the architectures with the least and the most work) are never dropped: the fit of the others
    extrapolates to them, so its miss there says more about the model than about the timing."""
    kept = list(range(len(target)))
    for _ in range(len(target) // 4):
        misses = {}
        for position, i in enumerate(kept):
            if i in ends:
                continue
            others = kept[:position] + kept[position + 1:]
            coefficients = torch.tensor(_least_squares(design[others], target[others]), dtype=torch.float64)
            relative = ((design[kept] @ coefficients - target[kept]) / target[kept]).abs()
            spread = float(relative[torch.arange(len(kept)) != position].median())
            if relative[position] > max(0.05, 3 * spread):
                misses[i] = float(relative[position])
        if not misses:
            break
        kept.remove(max(misses, key=misses.__getitem__))
    return kept


def _least_squares(design: torch.Tensor, target: torch.Tensor) -> list[float]:
    return torch.linalg.lstsq(design, target[:, None], driver='gelsd').solution.flatten().tolist()


def _left_out_error(design: torch.Tensor, target: torch.Tensor) -> float:
    """Sum of squared leave-one-out residuals of the least-squares fit (PRESS: residual / (1 - leverage))."""
    hat = design @ torch.linalg.pinv(design)
    return float((((target - hat @ target) / (1 - hat.diagonal()).clamp_min(1e-9)) ** 2).sum())
