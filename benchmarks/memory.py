"""Peak training memory of a search against a frozen subnet, on NNI's hub ProxylessNAS space (width 0.35, 32x32).

Each contender, path and batch size runs in its own process (two at a time): import everything (NNI's strategies
too, in every child), return the free heap to the kernel and take the RSS (the baseline: the interpreter and the
imports, the same in every child), build the contender, pin it to the path of a random subnet (``--paths`` of
them, drawn by the parent; see below), train one batch (weights, optimiser state and Lightning are then
allocated), then two windows of ``--steps`` batches. The frozen subnet is built alone (NNI's ``model_context``:
only its chosen candidates are ever made), as an exported architecture is trained, and its trainer holds the
search's validation batches too (unused), so that every child holds the same data. Three figures:

1. Whole process: the peak RSS (``VmHWM``, reset to the baseline) from the baseline to the end of the first
   window, minus the baseline: everything the process held at its worst moment of building, the first batch and
   ``--steps`` more (with 5, one architecture step of ours; NNI's strategies take one every batch; no
   validation): parameters, gradients, optimiser state, Lightning, the data, activations.
2. Per step, RSS: return the free heap pages to the kernel (glibc's ``malloc_trim(0)``), reset the kernel's
   peak-RSS counter (``echo 5 > /proc/self/clear_refs`` resets ``VmHWM`` to the current RSS), train, read
   ``VmHWM``; the growth ``VmHWM - RSS at the reset`` is what the process needed on top of what stays allocated.
   The children run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns freed tensors to the kernel at
   once. Without the trim, free heap left over from set-up hides part of the peak, and unevenly: with a subnet
   made by building the whole hub space and freezing it, the discarded candidates' freed memory stayed resident,
   so the subnet's forward reused about 16 MB of it and its RSS grew by half its tensor bytes (batch 32).
3. Per step, tensors: train under ``torch.profiler`` with ``profile_memory=True``; the peak of the bytes torch
   allocated and had not yet freed since the window started (activations, gradients, temporaries, the search's
   extra outputs), from the profiler's memory events. Unlike the RSS it is blind to the allocator and the page
   cache.

The frozen subnets of the same paths are measured the same way; a figure is the contender's mean over the paths
divided by the subnets' mean. Pinning: the architecture logits (ours) or alphas (NNI) are set to +-10 so that
every sampled path is the subnet's (in ``two`` mode the second candidate of each pair is still drawn, uniformly
among the others). A search samples a new path each step and its peak is that of its largest path, which the
frozen subnet of that path shares; pinning compares the same path, so the ratio is the search's own extra.
Where ``clear_refs`` cannot be written, the peaks are measured from the process's start (whole process) and from
the RSS before the first batch (per step) instead (the JSON says which). Run: ``python benchmarks/memory.py``
(``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import _harness as h
import _spaces as s
import torch
from pytorch_lightning import Callback


def trim_heap() -> None:
    """Give free heap pages back to the kernel (glibc ``malloc_trim``; nothing elsewhere)."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_mb(field: str) -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def peak_reset_works() -> bool:
    """Whether writing 5 to /proc/self/clear_refs lowers VmHWM back to the current RSS here."""
    try:
        block = bytearray(64 * 2 ** 20)
        block[::4096] = b'x' * len(block[::4096])
        del block
        before = _status_mb('VmHWM')
        Path('/proc/self/clear_refs').write_text('5')
        return _status_mb('VmHWM') < before - 32
    except OSError:
        return False


def process_baseline(reset: bool) -> float:
    """The RSS from which a child's whole-process peak counts, in MB: NNI's strategies imported (the subnet's
    child too, so that every baseline holds the same modules), garbage collected, free heap returned to the
    kernel, and the peak counter reset to it where ``reset``."""
    h.nni_strategy('DARTS')
    gc.collect()
    trim_heap()
    if reset:
        Path('/proc/self/clear_refs').write_text('5')
    return _status_mb('VmRSS')


def tensor_peak_mb(profiler) -> float | None:
    """Peak of the bytes torch allocated and had not freed yet, since the profiler started (its [memory] events)."""
    try:
        events = [e for e in profiler.profiler.kineto_results.events() if e.name() == '[memory]']
    except Exception as error:  # the raw events are torch internals: the RSS figure stands alone without them
        print(f'torch profiler memory events unavailable: {type(error).__name__}: {error}', file=sys.stderr)
        return None
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak / 2 ** 20


def resident_mb(module: torch.nn.Module, trainer) -> float:
    """What stays allocated from one step to the next, in MB: the parameters, their gradients (read at a batch's
    end, between its backward and the next ``zero_grad``; a sliced weight's gradient has its full size) and the
    optimisers' state. The windows below count only what a step allocates on top of this."""
    tensors: dict[int, torch.Tensor] = {}
    for parameter in module.parameters():
        for tensor in (parameter, parameter.grad):
            if tensor is not None:
                tensors[tensor.data_ptr()] = tensor
    for optimizer in trainer.optimizers:
        for state in optimizer.state.values():
            tensors.update({v.data_ptr(): v for v in state.values() if isinstance(v, torch.Tensor) and v.dim()})
    return sum(t.numel() * t.element_size() for t in tensors.values()) / 2 ** 20


class MemoryWindows(Callback):
    """Batch 0: set-up. Batches 1..steps: the RSS peak (VmHWM reset after batch 0, when the kernel allows).
    Batches steps+1..2*steps: the peak of torch's live allocations, from the profiler's memory events (profiling
    would inflate the RSS, hence the second window). ``process_peak_mb``: the largest VmHWM before the profiler
    starts (read before the reset at batch 0 and at the end of the first window).
    """

    def __init__(self, reset: bool, steps: int):
        self.reset, self.steps = reset, steps
        self.rss_mb, self.rss_growth_mb, self.tensor_peak_mb = _status_mb('VmRSS'), None, None
        self.resident_mb: float | None = None
        self.process_peak_mb = 0.0
        self.profiler = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == 0:
            self.process_peak_mb = _status_mb('VmHWM')  # set-up and the first batch, before the reset
            if self.reset:
                trim_heap()
                Path('/proc/self/clear_refs').write_text('5')
                self.rss_mb = _status_mb('VmRSS')
        if batch_idx == self.steps:
            peak = _status_mb('VmHWM')
            self.rss_growth_mb = peak - self.rss_mb
            self.process_peak_mb = max(self.process_peak_mb, peak)
            self.resident_mb = resident_mb(pl_module, trainer)
            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                   profile_memory=True)
            self.profiler.start()
        if batch_idx == 2 * self.steps and self.profiler is not None:
            self.profiler.stop()
            self.tensor_peak_mb = tensor_peak_mb(self.profiler)


PIN = 10.0
MEMORY_CONTENDERS = [name for name in h.STRATEGIES if name != 'NNI Proxyless: weight step only']


def _pinned(logits: torch.Tensor, index: int | list[int]) -> None:
    with torch.no_grad():
        logits.fill_(-PIN)
        logits[index] = PIN


def _indices(values, value) -> int | list[int]:
    """Where ``value`` is among ``values``; for an InputChoice's list of chosen candidates, where each one is."""
    return [values.index(v) for v in value] if isinstance(value, list) else values.index(value)


def pin(strategy, module, sample: dict) -> None:
    """Make ``strategy`` sample the architecture ``sample``: ours through its logits, NNI's through its alphas."""
    arch = getattr(strategy, 'arch', None)
    if arch is not None:
        for label, choice in arch.choices.items():
            _pinned(arch.logit(label), _indices(choice.values, sample[label]))
        return
    from nni.nas.oneshot.pytorch.supermodule.differentiable import DifferentiableMixedLayer
    for op in module.modules():
        if isinstance(op, DifferentiableMixedLayer):
            label = str(op.label)
            if '/in_repeat_' in label:  # NNI's Repeat: block i is skipped ('0') or run ('1')
                depth_label, block = label.split('/in_repeat_')
                _pinned(op._arch_alpha, op.names.index('1' if int(block) < sample[depth_label] else '0'))
            else:
                _pinned(op._arch_alpha, op.names.index(sample[label]))


def measured_fit(build: Callable[[], h.Contender], steps: int) -> dict:
    """In a fresh process: the baseline, then ``build()`` (data, model, pinning) and ``1 + 2 * steps`` batches
    under :class:`MemoryWindows`; the figures in MB."""
    reset = peak_reset_works()
    baseline = process_baseline(reset)
    contender = build()
    meter = MemoryWindows(reset, steps)
    h.quiet_trainer(max_epochs=1, limit_train_batches=2 * steps + 1, callbacks=[meter]).fit(
        contender.module, contender.train, contender.val)
    tensors = None if meter.tensor_peak_mb is None else round(meter.tensor_peak_mb, 2)
    return {'peak_reset': reset, 'baseline_mb': round(baseline, 1), 'process_peak_mb': round(meter.process_peak_mb, 1),
            'process_growth_mb': round(meter.process_peak_mb - baseline, 1), 'rss_mb': round(meter.rss_mb, 1),
            'growth_mb': round(meter.rss_growth_mb, 1), 'tensor_peak_mb': tensors,
            'resident_mb': round(meter.resident_mb, 2),
            'total_mb': None if tensors is None else round(meter.resident_mb + tensors, 2)}


def pinned_contender(name: str, strategies: dict[str, Callable], space_factory: Callable, sample: dict, train, val,
                     pin_nni: bool = True) -> h.Contender:
    """``subnet`` (built alone) or the search ``name`` pinned to ``sample``'s path (NNI's too where ``pin_nni``).
    The subnet's trainer is given the validation batches too, unused, so that both processes hold the same data."""
    if name == 'subnet':
        contender = h.frozen_contender(name, s.subnet(space_factory, sample), train)
        contender.val = val
        return contender
    strategy = strategies[name]()
    contender = h.oneshot_contender(name, strategy, space_factory, train, val)
    if pin_nni or getattr(strategy, 'arch', None) is not None:
        pin(strategy, contender.module, sample)
    return contender


def child(name: str, batch_size: int, steps: int, path: int, sample: dict) -> dict:
    """In a fresh process: train ``1 + 2 * steps`` batches of one contender on one path; the peaks in MB."""
    h.start('memory.py', None)

    def build() -> h.Contender:
        train, val = s.fake_loader(2 * steps + 1, batch_size), s.fake_loader(2 * steps + 1, batch_size, seed=1)
        return pinned_contender(name, h.STRATEGIES, s.hub_space, sample, train, val)

    return {'name': name, 'path': path, 'batch_size': batch_size, **measured_fit(build, steps)}


def _spawn(name: str, batch_size: int, steps: int, path: int, sample: dict) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='65536')
    command = [sys.executable, __file__, '--child', name, '--batch-size', str(batch_size), '--steps', str(steps),
               '--path', str(path), '--sample', json.dumps(sample)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f'{name} (batch {batch_size}) failed:\n{done.stderr[-3000:]}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def mean_ratios(runs: list[dict], names: list[str], key: str) -> tuple[dict, dict]:
    """Mean of ``key`` over the paths per contender, and its ratio to the subnets' mean."""
    means = {}
    for name in ['subnet'] + names:
        values = [r[key] for r in runs if r['name'] == name]
        means[name] = None if None in values else statistics.mean(values)
    base = means['subnet']
    ratios = {n: None if base is None or means[n] is None else round(means[n] / base, 3) for n in names}
    return {n: None if v is None else round(v, 2) for n, v in means.items()}, ratios


def process_figures(runs: list[dict], names: list[str]) -> dict:
    """The whole-process figures of ``runs``: mean peaks (absolute and above the baseline) and their ratios."""
    absolute, absolute_ratios = mean_ratios(runs, names, 'process_peak_mb')
    growth, ratios = mean_ratios(runs, names, 'process_growth_mb')
    baseline, _ = mean_ratios(runs, names, 'baseline_mb')
    return {'baseline_mb': baseline, 'subnet_process_peak_mb': absolute.pop('subnet'), 'process_peak_mb': absolute,
            'process_peak_ratios': absolute_ratios, 'subnet_process_growth_mb': growth.pop('subnet'),
            'process_growth_mb': growth, 'process_ratios': ratios}


def measure(names: list[str], batch_size: int, steps: int, paths: int, parallel: int) -> dict:
    """Whole-process, RSS and live-tensor peaks of every contender and subnet at one batch size; ratios to the
    subnets'."""
    samples = [s.random_sample(s.hub_space(), path) for path in range(paths)]
    jobs = [(name, path) for path in range(paths) for name in ['subnet'] + names]
    with ThreadPoolExecutor(parallel) as pool:
        runs = list(pool.map(lambda job: _spawn(job[0], batch_size, steps, job[1], samples[job[1]]), jobs))
    growth, ratios = mean_ratios(runs, names, 'growth_mb')
    tensors, tensor_ratios = mean_ratios(runs, names, 'tensor_peak_mb')
    resident, _ = mean_ratios(runs, names, 'resident_mb')
    return {'batch_size': batch_size, 'steps': steps, 'paths': paths, 'subnet_growth_mb': growth.pop('subnet'),
            'subnet_tensor_peak_mb': tensors.pop('subnet'), 'peak_reset': all(r['peak_reset'] for r in runs),
            'growth_mb': growth, 'ratios': ratios, 'tensor_peak_mb': tensors, 'tensor_ratios': tensor_ratios,
            'subnet_resident_mb': resident.pop('subnet'), 'resident_mb': resident, **process_figures(runs, names),
            'runs': runs}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[32, 128])
    parser.add_argument('--steps', type=int, default=5, help='batches after the reset (5: one arch step at every 5)')
    parser.add_argument('--paths', type=int, default=2, help='random subnet paths each contender is pinned to')
    parser.add_argument('--parallel', type=int, default=2, help='children at a time')
    parser.add_argument('--only', default='', help='|-separated parts of contender names to keep')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--batch-size', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--path', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--sample', type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batch_size, args.steps, args.path, args.sample)))
        return {}
    started, result = time.perf_counter(), h.start('memory.py', argv)
    if args.quick:
        args.batch_sizes, args.steps, args.paths = [32], 2, 1
        args.only = args.only or 'ours: search, arch every 1|NNI Proxyless: search'
    names = [name for name in h.strategy_names(args.only) if name in MEMORY_CONTENDERS]
    result['space'] = 'hub ProxylessNAS width 0.35, 32x32 inputs, 10 classes, SGD lr 0.05'
    result['by_batch_size'] = [measure(names, bs, args.steps, args.paths, args.parallel) for bs in args.batch_sizes]
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
