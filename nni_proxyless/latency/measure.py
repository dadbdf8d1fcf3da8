"""Latency measured on this machine with torch (``'cpu'`` and ``'cuda'``), cached on disk.

A module call is timed in eval mode without gradients, with a fixed torch thread count: ``warmup`` untimed calls,
one call to size the blocks, then the median over ``repeats`` blocks of about ``min_repeat_ms`` each
(:func:`median_ms`). The calls priced together are timed in rounds (three by default), each call on its own within
a round (:func:`interleaved_medians`): a burst of other work on the machine then disturbs one round of many calls,
which their medians ignore, instead of every block of a few calls. On the CPU a block is timed with
``time.perf_counter`` (:func:`cpu_block`); on a GPU with CUDA events, read once the GPU has finished the block
(:func:`cuda_block`).

Why not ``torch.utils.benchmark.Timer.blocked_autorange`` on the CPU: it sizes its blocks so that the timer's own
overhead stays below 0.01% of a block, which for the small modules of a search space makes blocks of 10 ms and
more. On a machine that runs anything else, such a block spans scheduler time slices and counts other processes'
time; blocks of about a millisecond fit in one slice, and the median keeps the ones nobody interrupted. Measured
on a busy 2-core machine (load average 15 to 19), on the 127 module calls of NNI's hub ProxylessNAS (width 0.35,
32x32 input, 1 thread), 3 rounds interleaved in one process: ``blocked_autorange(min_run_time=0.1)`` gave per-call
medians 11.5 and 17 times those of 1 ms blocks, a run-to-run spread (coefficient of variation per call, median
over calls) of 0.16 to 0.21 against 0.04 to 0.06, and took 4 to 5 times as long. ``Timer.timeit`` on 1 ms blocks
came closer (medians 1.36 times, spread 0.11 against 0.06) but took twice as long: it runs two untimed calls
before every block and sets the thread count again for each.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .. import _checks
from .._io import write_json_atomically
from .protocol import ModuleCall

__all__ = ['MeasuredPredictor', 'MeasuredSubnetLatency', 'median_ms', 'interleaved_medians', 'cpu_block', 'cuda_block',
           'default_cache_dir']

_logger = logging.getLogger('nni.proxyless')


def default_cache_dir() -> Path:
    """``$NNI_PROXYLESS_CACHE``, else ``~/.cache/nni-proxyless``."""
    return Path(os.environ.get('NNI_PROXYLESS_CACHE', Path.home() / '.cache' / 'nni-proxyless'))


class MeasuredPredictor:
    """Times each module call in eval mode without gradients: warm-up, then the median of repeated blocks.

    Args:
        device: ``'cpu'`` or ``'cuda'`` (CUDA timings are synchronised).
        threads: torch threads while measuring (CPU). Default 1.
        warmup: untimed calls before timing. Default 3.
        repeats: timed repeats; the median is kept. Default 9.
        min_repeat_ms: a repeat loops the call until it lasts this long (steadier for tiny modules). Default 1.
        rounds: the calls priced together are timed in this many rounds (:func:`interleaved_medians`). Default 3.
        cache_dir: where measurements are kept between runs (``None``: :func:`default_cache_dir`); keyed by
            device, threads, torch version and each call's signature (module type, hyper-parameters,
            parameter and input shapes). ``False`` disables the cache.
    """

    unit = 'ms'
    calibrate = True  # build_latency_table fits the table to whole-network timings (build.py, step 4)

    def __init__(self, device: str = 'cpu', *, threads: int = 1, warmup: int = 3, repeats: int = 9,
                 min_repeat_ms: float = 1.0, rounds: int = 3, cache_dir: str | os.PathLike | bool | None = None):
        _checks.one_of('device', device, ('cpu', 'cuda'))
        if device == 'cuda' and not torch.cuda.is_available():
            raise ValueError("applied_hardware='cuda' needs a CUDA device, and torch sees none here.")
        self.device = device
        self.threads = _checks.integer('threads', threads, low=1)
        self.warmup = _checks.integer('warmup', warmup, low=0)
        self.repeats = _checks.integer('repeats', repeats, low=1)
        self.min_repeat_s = _checks.number('min_repeat_ms', min_repeat_ms, positive=True, unit='milliseconds') / 1000
        self.rounds = _checks.integer('rounds', rounds, low=1)
        self.description = f'{device}, {threads} thread(s), torch {torch.__version__}'
        if cache_dir is False:
            self.cache_file = None
        else:
            folder = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)
            self.cache_file = folder / f'measured-{device}-{threads}t-torch{torch.__version__}.json'

    def predict(self, calls: Sequence[ModuleCall]) -> list[float]:
        """Milliseconds per call (cached calls are not measured again)."""
        cache = self._read_cache()
        keys = [hashlib.sha256(call.signature().encode()).hexdigest() for call in calls]
        todo = [(key, call) for key, call in zip(keys, calls) if key not in cache]
        _logger.info('Latency on %s: %d module calls, %d from the cache %s, %d to measure.', self.description,
                     len(calls), len(calls) - len(todo), self.cache_file or '(disabled)', len(todo))
        for (key, _), milliseconds in zip(todo, self._measure([call for _, call in todo])):
            cache[key] = milliseconds
        if todo and self.cache_file is not None:
            write_json_atomically(self.cache_file, cache)
        return [cache[key] for key in keys]

    def for_whole_networks(self) -> 'MeasuredPredictor':
        """This predictor with three times the repeats, in three times the rounds, for the whole networks of the
        calibration (:func:`~nni_proxyless.latency.build_latency_table`, step 4). The fit rests on these few
        timings, and they are cheap to repeat next to the table's hundreds of module calls. On a 2-core virtual
        machine, MobileNetV3 tables calibrated in 9 rounds met 10% on 100, 100 and 90% of 20 architectures (timed
        in 3 rounds), in 3 rounds on 85, 100 and 85% (the architectures timed in 9). Nine times the repeats and
        rounds did no better: in 16 alternating builds, 4 of 8 met 10% on 90% of the architectures, against 7 of 8
        with three times."""
        twin = copy.copy(self)
        twin.repeats, twin.rounds = 3 * self.repeats, 3 * self.rounds
        return twin

    def _measure(self, calls: list[ModuleCall]) -> list[float]:
        """Milliseconds per call of each of ``calls``, timed in rounds (:func:`interleaved_medians`)."""
        runs, modules = [], []
        for call in calls:
            module, args, kwargs = call.module, call.args, call.kwargs
            if self.device == 'cuda':
                module, args, kwargs = copy.deepcopy(module).cuda(), _to_cuda(args), _to_cuda(kwargs)
            modules.append((module, module.training))
            runs.append(functools.partial(_call, module, args, kwargs))
        try:
            with torch.no_grad(), _torch_threads(self.threads):
                for module, _ in modules:
                    module.eval()
                blocks = [cuda_block(run) if self.device == 'cuda' else cpu_block(run) for run in runs]
                return interleaved_medians(blocks, warmup=self.warmup, repeats=self.repeats,
                                           min_repeat_ms=self.min_repeat_s * 1000, rounds=self.rounds)
        finally:
            for module, was_training in modules:
                module.train(was_training)

    def _read_cache(self) -> dict[str, float]:
        if self.cache_file is None or not self.cache_file.exists():
            return {}
        try:
            data = json.loads(self.cache_file.read_text(encoding='utf-8'))
            return {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, TypeError, AttributeError) as error:
            _logger.warning('Ignoring the unreadable latency cache %s (%s); measuring again.', self.cache_file, error)
            return {}


class MeasuredSubnetLatency:
    """``LAT(m)`` of whole architectures, measured here: the frozen subnet timed at ``dummy_input`` (cached per
    architecture). REINFORCE's ``reinforce_options={'latency': 'measured'}`` prices rewards with it.

    Args:
        supernet: the searched supernet (``freeze(sample)`` gives each subnet).
        dummy_input: the input shape, or an input tensor.
        device: ``'cpu'`` or ``'cuda'``: where to time (the search uses ``'cuda'`` when
            ``applied_hardware='cuda'``).
        **predictor_options: for :class:`MeasuredPredictor` (``threads``, ``repeats``, ...).
    """

    unit = 'ms'

    def __init__(self, supernet: nn.Module, dummy_input: Sequence[int] | torch.Tensor, device: str = 'cpu',
                 **predictor_options: Any):
        self.supernet, self.cache = supernet, {}
        self.input = dummy_input if isinstance(dummy_input, torch.Tensor) else torch.randn(tuple(dummy_input))
        self.input = self.input.cpu()  # the predictor takes CPU modules and inputs (and copies them to 'cuda')
        self.predictor = MeasuredPredictor(device, cache_dir=False, **predictor_options)

    def __call__(self, sample: dict[str, Any]) -> float:
        """Milliseconds of the architecture ``sample`` (an NNI sample)."""
        key = repr(sorted(sample.items()))
        if key not in self.cache:
            subnet = self.supernet.freeze(sample).cpu()  # a copy: the supernet may be on a GPU while it trains
            self.cache[key] = self.predictor.predict([ModuleCall(subnet, (self.input,), {})])[0]
        return self.cache[key]


def median_ms(block: Callable[[int], float], *, warmup: int = 3, repeats: int = 9, min_repeat_ms: float = 1.0
              ) -> float:
    """Median milliseconds per call: ``warmup`` untimed calls, one call to size the blocks, then ``repeats`` blocks
    of about ``min_repeat_ms`` each.

    Args:
        block: ``block(number)`` runs the call ``number`` times and returns the milliseconds per call
            (:func:`cpu_block`, :func:`cuda_block`).
    """
    return interleaved_medians([block], warmup=warmup, repeats=repeats, min_repeat_ms=min_repeat_ms)[0]


def interleaved_medians(blocks: Sequence[Callable[[int], float]], *, warmup: int = 3, repeats: int = 9,
                        min_repeat_ms: float = 1.0, rounds: int = 3) -> list[float]:
    """:func:`median_ms` of several calls at once, measured in ``rounds`` rounds: in each round every call in turn
    gets its ``warmup`` untimed calls, then its share of the ``repeats`` blocks one after the other. So each call
    is timed on its own and warm, as :func:`median_ms` times it, while a stretch of time in which other work
    slowed the machine falls on one round of many calls rather than on every block of a few. One call: one round.
    """
    rounds = 1 if len(blocks) == 1 else max(1, min(rounds, repeats))
    numbers: list[int | None] = [None] * len(blocks)
    samples: list[list[float]] = [[] for _ in blocks]
    started, reported = time.perf_counter(), time.perf_counter()
    for round_ in range(rounds):
        share = repeats // rounds + (round_ < repeats % rounds)
        for i, block in enumerate(blocks):
            if warmup:
                block(warmup)
            if numbers[i] is None:
                numbers[i] = max(1, math.ceil(min_repeat_ms / max(block(1), 1e-6)))
            samples[i].extend(block(numbers[i]) for _ in range(share))
            if time.perf_counter() - reported > 10:
                _logger.info('Timed round %d of %d: %d of %d calls (%.0f s).', round_ + 1, rounds, i + 1,
                             len(blocks), time.perf_counter() - started)
                reported = time.perf_counter()
    return [statistics.median(timings) for timings in samples]


def cpu_block(run: Callable[[], object]) -> Callable[[int], float]:
    """Times ``number`` calls of ``run`` with ``time.perf_counter``."""
    def block(number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            run()
        return (time.perf_counter() - start) * 1000 / number
    return block


def cuda_block(run: Callable[[], object], event: Callable[..., Any] | None = None) -> Callable[[int], float]:
    """Times ``number`` calls of ``run`` with CUDA events, read once the GPU has finished them.

    Args:
        event: ``torch.cuda.Event`` unless given.
    """
    event = event or torch.cuda.Event

    def block(number: int) -> float:
        start, end = event(enable_timing=True), event(enable_timing=True)
        start.record()
        for _ in range(number):
            run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / number
    return block


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _call(module: nn.Module, args: tuple, kwargs: dict) -> Any:
    return module(*args, **kwargs)


def _to_cuda(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cuda()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cuda(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cuda(v) for k, v in value.items()}
    return value
