"""What the per-space benchmarks share (mobilenet_space.py, darts_space.py): cost and peak memory of searches.

Cost: the method of cost.py (round-robin fits in one process, one torch thread, medians over rounds, ratios to
the mean of random frozen subnets measured in the same rounds), except that a contender whose set-up or warm-up
fit raises is left out and its error recorded (NNI's strategies do not support every space).
Peak memory: the method of memory.py (one child process per contender and path, two at a time; the RSS growth
after a heap trim and a peak reset, and the peak of torch's live allocations under the profiler), reusing its
measuring callback. Ours is pinned to each frozen subnet's path through its logits; NNI's DARTS and GumbelDARTS
are not pinned: they run every candidate whatever their architecture weights.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import _harness as h
import _spaces as s
import memory
import torch
import torch.nn.functional as F
from nni_proxyless.ops.sliced_layers import trim_to_input


def _error_text(error: Exception) -> str:
    return f'{type(error).__name__}: {error}'[:600]


def _searches(strategies: dict[str, Callable], space_factory: Callable, train, val, errors: dict) -> list:
    searches = []
    for name, make in strategies.items():
        try:
            searches.append(h.oneshot_contender(name, make(), space_factory, train, val))
        except Exception as error:  # an unsupported space is a result, recorded in the JSON
            errors[name] = _error_text(error)
    return searches


def _warmed(contenders: list, steps: int, errors: dict) -> list:
    """One warm-up fit of each; those that raise are recorded in ``errors`` and left out."""
    kept = []
    for contender in contenders:
        try:
            contender.fit_once(steps)
        except Exception as error:  # NNI's strategies on a space they do not support
            errors[contender.name] = _error_text(error)
            continue
        contender.times.clear()
        kept.append(contender)
    return kept


def cost(space_factory: Callable, strategies: dict[str, Callable], batch_size: int, steps: int, rounds: int,
         subnets: int, slow: dict[str, int] | None = None, trimmed: bool = False) -> dict:
    """Per-step time ratios of ``strategies`` to the mean of ``subnets`` random frozen subnets of the space.

    ``slow`` gives some contenders fewer timed batches per fit (tens of times slower ones); every figure is the
    median time per timed batch, so the ratios stay comparable. ``trimmed``: the same subnets are also timed with
    their convolutions' kernels trimmed to the taps their inputs reach, as our searched layers are
    (``trim_to_input``: exact, and much cheaper for large kernels on 1x1 and 2x2 maps), and ``ratios_to_trimmed``
    gives the search's cost against those: its own overhead, without the trimming's gain.
    """
    slow = slow or {}
    train, val = s.fake_loader(steps + 1, batch_size), s.fake_loader(steps + 1, batch_size, seed=1)
    space, errors = space_factory(), {}
    samples = [s.random_sample(space, i) for i in range(subnets)]
    frozen = [h.frozen_contender(f'subnet {i}', space.freeze(sample), train) for i, sample in enumerate(samples)]
    if trimmed:
        frozen += [h.frozen_contender(f'trimmed subnet {i}', trimmed_convolutions(space.freeze(sample)), train)
                   for i, sample in enumerate(samples)]
    contenders = _warmed(frozen + _searches(strategies, space_factory, train, val, errors), 2, errors)
    for _ in range(rounds):
        for contender in contenders:
            contender.fit_once(slow.get(contender.name, steps))
    per_step = {c.name: c.median / slow.get(c.name, steps) for c in contenders}
    baselines, searches = contenders[:len(frozen)], contenders[len(frozen):]
    plain = [per_step[c.name] for c in baselines if c.name.startswith('subnet')]
    base = statistics.mean(plain)
    result = {'batch_size': batch_size, 'steps': steps, 'rounds': rounds, 'subnets': subnets,
              'steps_of': {c.name: slow[c.name] for c in searches if c.name in slow},
              'frozen_step_ms': round(1000 * base, 2), 'frozen_spread': round(max(plain) / min(plain), 3),
              'ratios': {c.name: round(per_step[c.name] / base, 3) for c in searches},
              'step_ms': {c.name: round(1000 * per_step[c.name], 2) for c in searches}, 'errors': errors}
    if trimmed:
        trimmed_base = statistics.mean(per_step[c.name] for c in baselines if c.name.startswith('trimmed'))
        result['trimmed_step_ms'] = round(1000 * trimmed_base, 2)
        result['ratios_to_trimmed'] = {c.name: round(per_step[c.name] / trimmed_base, 3) for c in searches}
    return result


def trimmed_convolutions(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every zero-padded convolution running the kernel taps its input reaches (``trim_to_input``,
    what our searched convolutions do); same outputs and gradients."""
    for conv in model.modules():
        if isinstance(conv, torch.nn.modules.conv._ConvNd) and conv.padding_mode == 'zeros' \
                and not isinstance(conv, torch.nn.modules.conv._ConvTransposeNd):
            conv.forward = functools.partial(_trimmed_forward, conv)
    return model


def _trimmed_forward(conv: torch.nn.modules.conv._ConvNd, x: torch.Tensor) -> torch.Tensor:
    weight, padding = trim_to_input(conv.weight, x.shape[2:], conv.stride, conv.padding, conv.dilation)
    convolution = (F.conv1d, F.conv2d, F.conv3d)[weight.dim() - 3]
    return convolution(x, weight, conv.bias, conv.stride, padding, conv.dilation, conv.groups)
