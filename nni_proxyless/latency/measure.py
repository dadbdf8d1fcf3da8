"""Latency measured on this machine with torch (``'cpu'`` and ``'cuda'``), cached on disk."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from .._io import write_json_atomically
from .protocol import ModuleCall

__all__ = ['MeasuredPredictor', 'default_cache_dir']

_logger = logging.getLogger('nni.proxyless')


def default_cache_dir() -> Path:
    """``$NNI_PROXYLESS_CACHE``, else ``~/.cache/nni-proxyless``."""
    return Path(os.environ.get('NNI_PROXYLESS_CACHE', Path.home() / '.cache' / 'nni-proxyless'))


class MeasuredPredictor:
    """Times each module call in eval mode without gradients: warm-up, then the median of repeats.

    Args:
        device: ``'cpu'`` or ``'cuda'`` (CUDA timings are synchronised).
        threads: torch threads while measuring (CPU). Default 1.
        warmup: untimed calls before timing. Default 3.
        repeats: timed repeats; the median is kept. Default 9.
        min_repeat_ms: a repeat loops the call until it lasts this long (steadier for tiny modules). Default 1.
        cache_dir: where measurements are kept between runs (``None``: :func:`default_cache_dir`); keyed by
            device, threads, torch version and each call's signature (module type, hyper-parameters,
            parameter and input shapes). ``False`` disables the cache.
    """

    unit = 'ms'
    calibrate = True  # build_latency_table fits the table to whole-network timings (build.py, step 4)

    def __init__(self, device: str = 'cpu', *, threads: int = 1, warmup: int = 3, repeats: int = 9,
                 min_repeat_ms: float = 1.0, cache_dir: str | os.PathLike | bool | None = None):
        if device not in ('cpu', 'cuda'):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}.")
        if device == 'cuda' and not torch.cuda.is_available():
            raise ValueError("applied_hardware='cuda' needs a CUDA device, and torch sees none here.")
        for name, value, low in (('threads', threads, 1), ('warmup', warmup, 0), ('repeats', repeats, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f'{name} must be an integer >= {low}, got {value!r}.')
        self.device, self.threads, self.warmup, self.repeats = device, threads, warmup, repeats
        self.min_repeat_s = min_repeat_ms / 1000
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
        started, reported = time.perf_counter(), time.perf_counter()
        with _torch_threads(self.threads):
            for done, (key, call) in enumerate(todo, start=1):
                cache[key] = self._measure(call)
                if time.perf_counter() - reported > 10:
                    _logger.info('Measured %d of %d module calls (%.0f s).', done, len(todo),
                                 time.perf_counter() - started)
                    reported = time.perf_counter()
        if todo and self.cache_file is not None:
            write_json_atomically(self.cache_file, cache)
        return [cache[key] for key in keys]

    def _measure(self, call: ModuleCall) -> float:
        module, args, kwargs = call.module, call.args, call.kwargs
        if self.device == 'cuda':
            module, args, kwargs = copy.deepcopy(module).cuda(), _to_cuda(args), _to_cuda(kwargs)
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                return 1000 * self._median_seconds(lambda: module(*args, **kwargs))
        finally:
            module.train(was_training)

    def _median_seconds(self, run: Callable[[], object]) -> float:
        sync = torch.cuda.synchronize if self.device == 'cuda' else (lambda: None)
        for _ in range(self.warmup):
            run()
        sync()
        start = time.perf_counter()
        run()
        sync()
        number = max(1, math.ceil(self.min_repeat_s / max(time.perf_counter() - start, 1e-9)))
        samples = []
        for _ in range(self.repeats):
            sync()
            start = time.perf_counter()
            for _ in range(number):
                run()
            sync()
            samples.append((time.perf_counter() - start) / number)
        return statistics.median(samples)

    def _read_cache(self) -> dict[str, float]:
        if self.cache_file is None or not self.cache_file.exists():
            return {}
        try:
            data = json.loads(self.cache_file.read_text(encoding='utf-8'))
            return {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, TypeError, AttributeError) as error:
            _logger.warning('Ignoring the unreadable latency cache %s (%s); measuring again.', self.cache_file, error)
            return {}


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _to_cuda(value):
    if isinstance(value, torch.Tensor):
        return value.cuda()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cuda(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cuda(v) for k, v in value.items()}
    return value
