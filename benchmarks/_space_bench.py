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


def release_memory() -> None:
    """Collect the timed fits' garbage and give the free heap back to the kernel (before memory children run)."""
    gc.collect()
    memory.trim_heap()


def add_child_arguments(parser: argparse.ArgumentParser) -> None:
    """The hidden options by which a script runs one memory child of itself (it has ``--batch-size`` already)."""
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--child-steps', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--path', type=int, default=0, help=argparse.SUPPRESS)


def child(script: str, space_factory: Callable, strategies: dict[str, Callable], args) -> dict:
    """In a fresh process: the memory peaks of one contender (or ``subnet``) on one random path."""
    h.start(script, None)
    name, steps, batch_size = args.child, args.child_steps, args.batch_size
    train = s.fake_loader(2 * steps + 1, batch_size)
    val = s.fake_loader(2 * steps + 1, batch_size, seed=1)
    sample = s.random_sample(space_factory(), args.path)
    if name == 'subnet':
        contender = h.frozen_contender(name, space_factory().freeze(sample), train)
    else:
        strategy = strategies[name]()
        contender = h.oneshot_contender(name, strategy, space_factory, train, val)
        if getattr(strategy, 'arch', None) is not None:  # ours; NNI's DARTS runs every candidate anyway
            memory.pin(strategy, contender.module, sample)
    reset = memory.peak_reset_works()
    meter = memory.MemoryWindows(reset, steps)
    h.quiet_trainer(max_epochs=1, limit_train_batches=2 * steps + 1, callbacks=[meter]).fit(
        contender.module, contender.train, contender.val)
    tensors = None if meter.tensor_peak_mb is None else round(meter.tensor_peak_mb, 2)
    return {'name': name, 'path': args.path, 'batch_size': batch_size, 'peak_reset': reset,
            'rss_mb': round(meter.rss_mb, 1), 'growth_mb': round(meter.rss_growth_mb, 1), 'tensor_peak_mb': tensors,
            'resident_mb': round(meter.resident_mb, 2),
            'total_mb': None if tensors is None else round(meter.resident_mb + tensors, 2)}


def _spawn(script_path: str, name: str, batch_size: int, steps: int, path: int, options: list[str]) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='65536')
    command = [sys.executable, script_path, '--child', name, '--batch-size', str(batch_size), '--child-steps',
               str(steps), '--path', str(path), *options]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {'name': name, 'path': path, 'error': done.stderr.strip().splitlines()[-1][:600]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_memory(script_path: str, names: list[str], batch_size: int, steps: int, paths: int, parallel: int,
                unpinned: tuple[str, ...] = (), options: list[str] | None = None) -> dict:
    """Memory peaks of every contender and of the frozen subnets on ``paths`` random paths; ratios to the subnets'.

    The ``unpinned`` contenders (NNI's, whose peak does not depend on the path) run on the first path only.
    ``options`` are passed on to the children (``--quick``: the script's small space).
    """
    jobs = [(name, path) for path in range(paths) for name in ['subnet'] + names
            if path == 0 or name not in unpinned]
    with ThreadPoolExecutor(parallel) as pool:
        runs = list(pool.map(lambda job: _spawn(script_path, job[0], batch_size, steps, job[1], options or []), jobs))
    errors = {r['name']: r['error'] for r in runs if 'error' in r}
    if 'subnet' in errors:
        raise RuntimeError(f'the frozen subnet failed: {errors["subnet"]}')
    fine = [r for r in runs if r['name'] not in errors]
    kept = [name for name in names if name not in errors]
    growth, ratios = memory.mean_ratios(fine, kept, 'growth_mb')
    tensors, tensor_ratios = memory.mean_ratios(fine, kept, 'tensor_peak_mb')
    resident, resident_ratios = memory.mean_ratios(fine, kept, 'resident_mb')
    total, total_ratios = memory.mean_ratios(fine, kept, 'total_mb')
    return {'batch_size': batch_size, 'steps': steps, 'paths': paths, 'subnet_growth_mb': growth.pop('subnet'),
            'subnet_tensor_peak_mb': tensors.pop('subnet'), 'peak_reset': all(r['peak_reset'] for r in fine),
            'growth_mb': growth, 'ratios': ratios, 'tensor_peak_mb': tensors, 'tensor_ratios': tensor_ratios,
            'subnet_resident_mb': resident.pop('subnet'), 'resident_mb': resident, 'resident_ratios': resident_ratios,
            'subnet_total_mb': total.pop('subnet'), 'total_mb': total, 'total_ratios': total_ratios,
            'errors': errors, 'runs': runs}
