"""What the per-space benchmarks share (mobilenet_space.py, darts_space.py): cost and peak memory of searches.

Cost: the method of cost.py (round-robin fits in one process, one torch thread, medians over rounds, ratios to
the mean of random frozen subnets measured in the same rounds), except that a contender whose set-up or warm-up
fit raises is left out and its error recorded (NNI's strategies do not support every space).
Cost on pinned paths (``pinned_cost``): the same timing, each search pinned to the path of one frozen subnet at a
time and compared with that subnet, at a given input resolution.
Peak memory: the method of memory.py (one child process per contender and path, two at a time; the whole
process's peak over its baseline, the RSS growth after a heap trim and a peak reset, and the peak of torch's live
allocations under the profiler), reusing its measuring code. Ours is pinned to each frozen subnet's path
through its logits; NNI's DARTS and GumbelDARTS are not pinned: they run every candidate whatever their
architecture weights.
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
    gives the search's cost against those: its own overhead, without the trimming's gain (``convolutions_trimmed``:
    per subnet, how many of its convolutions lose taps, of how many).
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
        result['convolutions_trimmed'] = [convolutions_trimmed(c.module.model, 32) for c in frozen[:subnets]]
    return result


def pinned_cost(space_factory: Callable, strategies: dict[str, Callable], batch_size: int, steps: int, rounds: int,
                paths: int, resolution: int) -> dict:
    """Per-step time ratios of ``strategies``, each pinned to the path of one of ``paths`` random frozen subnets in
    turn, to those subnets', on ``resolution`` x ``resolution`` inputs.

    A search is built once and pinned again (``memory.pin``) before each fit; a round fits every path's subnet,
    then each search on that path. A figure is the search's mean time per step over the paths divided by the
    subnets' mean (an epoch of equal batches on each path); ``path_ratios`` gives each path's ratio.
    ``convolutions_trimmed``: per subnet, how many of its convolutions lose kernel taps to ``trim_to_input`` at
    this resolution, and of how many.
    """
    train = s.fake_loader(steps + 1, batch_size, resolution=resolution)
    val = s.fake_loader(steps + 1, batch_size, resolution=resolution, seed=1)
    space = space_factory()
    samples = [s.random_sample(space, i) for i in range(paths)]
    subnets = [h.frozen_contender(f'subnet {i}', space.freeze(sample), train) for i, sample in enumerate(samples)]
    del space
    searches = {}
    for name, make in strategies.items():
        strategy = make()
        searches[name] = (strategy, h.oneshot_contender(name, strategy, space_factory, train, val))
    for contender in subnets:
        contender.fit_once(2)
    for strategy, contender in searches.values():
        memory.pin(strategy, contender.module, samples[0])
        contender.fit_once(2)
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for i, sample in enumerate(samples):
            times.setdefault(('subnet', i), []).append(subnets[i].fit_once(steps) / steps)
            for name, (strategy, contender) in searches.items():
                memory.pin(strategy, contender.module, sample)
                times.setdefault((name, i), []).append(contender.fit_once(steps) / steps)
    median = {key: statistics.median(values) for key, values in times.items()}
    per_path = {name: [median[name, i] for i in range(paths)] for name in ['subnet', *strategies]}
    base = statistics.mean(per_path['subnet'])
    return {'resolution': resolution, 'batch_size': batch_size, 'steps': steps, 'rounds': rounds, 'paths': paths,
            'frozen_step_ms': round(1000 * base, 2),
            'frozen_spread': round(max(per_path['subnet']) / min(per_path['subnet']), 3),
            'ratios': {name: round(statistics.mean(per_path[name]) / base, 3) for name in strategies},
            'step_ms': {name: round(1000 * statistics.mean(per_path[name]), 2) for name in strategies},
            'path_ratios': {name: [round(a / b, 3) for a, b in zip(per_path[name], per_path['subnet'])]
                            for name in strategies},
            'convolutions_trimmed': [convolutions_trimmed(c.module.model, resolution) for c in subnets]}


def convolutions_trimmed(model: torch.nn.Module, resolution: int) -> list[int]:
    """[how many of ``model``'s zero-padded convolutions ``trim_to_input`` would run with fewer kernel taps on a
    ``resolution`` x ``resolution`` input, how many there are]."""
    convolutions = [m for m in model.modules() if _trimmable(m)]
    trimmed = []
    hooks = [conv.register_forward_pre_hook(lambda conv, inputs: trimmed.append(
        trim_to_input(conv.weight, inputs[0].shape[2:], conv.stride, conv.padding, conv.dilation)[0].shape
        != conv.weight.shape)) for conv in convolutions]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, resolution, resolution))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return [sum(trimmed), len(trimmed)]


def _trimmable(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.modules.conv._ConvNd) and module.padding_mode == 'zeros' \
        and not isinstance(module, torch.nn.modules.conv._ConvTransposeNd)


def trimmed_convolutions(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every zero-padded convolution running the kernel taps its input reaches (``trim_to_input``,
    what our searched convolutions do); same outputs and gradients."""
    for conv in filter(_trimmable, model.modules()):
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
    parser.add_argument('--sample', type=json.loads, help=argparse.SUPPRESS)


def child(script: str, space_factory: Callable, strategies: dict[str, Callable], args) -> dict:
    """In a fresh process: the memory peaks of one contender (or ``subnet``) on one random path."""
    h.start(script, None)
    name, steps, batch_size = args.child, args.child_steps, args.batch_size

    def build() -> h.Contender:
        train = s.fake_loader(2 * steps + 1, batch_size)
        val = s.fake_loader(2 * steps + 1, batch_size, seed=1)
        # NNI's DARTS runs every candidate whatever its alphas: not pinned
        return memory.pinned_contender(name, strategies, space_factory, args.sample, train, val, pin_nni=False)

    return {'name': name, 'path': args.path, 'batch_size': batch_size, **memory.measured_fit(build, steps)}


def _spawn(script_path: str, name: str, batch_size: int, steps: int, path: int, sample: dict,
           options: list[str]) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='65536')
    command = [sys.executable, script_path, '--child', name, '--batch-size', str(batch_size), '--child-steps',
               str(steps), '--path', str(path), '--sample', json.dumps(sample), *options]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {'name': name, 'path': path, 'error': done.stderr.strip().splitlines()[-1][:600]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_memory(script_path: str, space_factory: Callable, names: list[str], batch_size: int, steps: int,
                paths: int, parallel: int, unpinned: tuple[str, ...] = (), options: list[str] | None = None) -> dict:
    """Memory peaks of every contender and of the frozen subnets on ``paths`` random paths of ``space_factory``'s
    space; ratios to the subnets'.

    The ``unpinned`` contenders (NNI's, whose peak does not depend on the path) run on the first path only.
    ``options`` are passed on to the children (``--quick``: the script's small space).
    """
    space = space_factory()
    samples = [s.random_sample(space, path) for path in range(paths)]
    del space
    jobs = [(name, path) for path in range(paths) for name in ['subnet'] + names
            if path == 0 or name not in unpinned]
    with ThreadPoolExecutor(parallel) as pool:
        runs = list(pool.map(lambda job: _spawn(script_path, job[0], batch_size, steps, job[1], samples[job[1]],
                                                options or []), jobs))
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
            **memory.process_figures(fine, kept), 'errors': errors, 'runs': runs}
