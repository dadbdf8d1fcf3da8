"""Timed fits of the GPU benchmark: contenders pinned to one path, FakeData on the device, synchronised timers.

Kept apart from ``gpu.py`` (what is measured and reported) so that each reads as one concept: here, how one
contender is fitted under one precision and what a fit records (time, peak CUDA memory, synchronisations).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import warnings
from typing import Any, Callable

import torch
from pytorch_lightning import Callback

import _harness as h
import _spaces as s
from memory import pin
from nni_proxyless import Proxyless
from nni_proxyless.callbacks import ChannelsLast

PRECISIONS = ['32-true', 'bf16-mixed', '16-mixed']
SUBNET = 'subnet'
# name -> (strategy factory or None for the frozen subnet, train in channels_last, runs --nni-steps batches)
CONTENDERS: dict[str, tuple[Callable[[], Any] | None, bool, bool]] = {
    SUBNET: (None, False, False),
    'subnet, channels_last': (None, True, False),
    'ours: weight step only': (h.STRATEGIES['ours: weight step only'], False, False),
    'ours: search, arch every 5': (h.STRATEGIES['ours: search, arch every 5'], False, False),
    'ours: search, arch every 1': (h.STRATEGIES['ours: search, arch every 1'], False, False),
    'ours: search every 5, channels_last': (lambda: Proxyless(arch_update_every=5, channels_last=True, seed=0),
                                            False, False),
    'NNI Proxyless: weight step only': (h.STRATEGIES['NNI Proxyless: weight step only'], False, True),
    'NNI Proxyless: search': (h.STRATEGIES['NNI Proxyless: search'], False, True),
    'NNI DARTS: search': (h.STRATEGIES['NNI DARTS: search'], False, True),
}
QUICK_CONTENDERS = [SUBNET, 'ours: search, arch every 1', 'ours: search every 5, channels_last']


class Deadline:
    """When no new group or round starts (``seconds``), and when no new fit starts at all (``grace`` later)."""

    def __init__(self, seconds: float, grace: float = 40.0):
        self.end = time.perf_counter() + seconds
        self.hard_end = self.end + grace

    def passed(self) -> bool:
        return time.perf_counter() > self.end

    def hard_passed(self) -> bool:
        return time.perf_counter() > self.hard_end


class WindowMeter(Callback):
    """Wall time and peak CUDA memory of a fit's batches after the first (synchronised on a GPU)."""

    def __init__(self, cuda: bool, sync_audit: bool = False):
        self.cuda, self.sync_audit = cuda, sync_audit
        self.seconds = self.peak_mb = self.growth_mb = None
        self.batches, self._start, self._base = 0, 0.0, 0
        self.syncs: list = []
        self._recording: Any = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx != 1:
            return
        if self.cuda:
            torch.cuda.synchronize()
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        if self.sync_audit:
            self._recording = warnings.catch_warnings(record=True)
            self.syncs = self._recording.__enter__()
            warnings.simplefilter('always')
            torch.cuda.set_sync_debug_mode('warn')
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= 1:
            self.batches += 1
        if batch_idx != trainer.num_training_batches - 1:
            return
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self._start
        self.stop_audit()
        if self.cuda:
            peak = torch.cuda.max_memory_allocated()
            self.peak_mb, self.growth_mb = peak / 2 ** 20, (peak - self._base) / 2 ** 20

    def stop_audit(self) -> None:
        """Leave the synchronisation audit (also when a fit fails inside it); keep the synchronisation warnings."""
        if self._recording is None:
            return
        torch.cuda.set_sync_debug_mode('default')
        self._recording.__exit__(None, None, None)
        self._recording = None
        self.syncs = [w for w in self.syncs if 'synchroniz' in str(w.message)]


class Batches(torch.utils.data.Dataset):
    """Whole batches made in advance (a loader with ``batch_size=None`` yields them as they are)."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches[index]


def fake_data(count: int, batch_size: int, resolution: int, device: str, seed: int):
    """``count`` batches of torchvision ``FakeData`` images (10 classes) on ``device``, as an NNI DataLoader.

    The images come from a pool of at most 256 (batches repeat them in another order); without torchvision,
    uniform random images of the same shape, fixed by ``seed``.
    """
    pool = min(count * batch_size, 256)
    try:
        from torchvision.datasets import FakeData
        from torchvision.transforms import ToTensor
        images = FakeData(size=pool, image_size=(3, resolution, resolution), num_classes=10, transform=ToTensor(),
                          random_offset=seed)
        xs, ys = zip(*(images[i] for i in range(pool)))
        x, y = torch.stack(xs), torch.as_tensor(ys)
    except ImportError:
        generator = torch.Generator().manual_seed(seed)
        x = torch.rand(pool, 3, resolution, resolution, generator=generator)
        y = torch.randint(10, (pool,), generator=generator)
    x, y = x.to(device), y.to(device)
    order = torch.randperm(count * batch_size, generator=torch.Generator().manual_seed(seed)) % pool
    batches = [(x[part.to(device)], y[part.to(device)]) for part in order.split(batch_size)]
    return s.DataLoader(Batches(batches), batch_size=None)


class Run:
    """One contender under one precision: its per-fit times and peak memory."""

    def __init__(self, name: str, precision: str, contender: h.Contender, steps: int, callbacks: list):
        self.name, self.precision, self.contender, self.steps = name, precision, contender, steps
        self.callbacks, self.times, self.peaks, self.growths, self.error = callbacks, [], [], [], None

    def fit(self, steps: int, device: str, keep: bool = True, sync_audit: bool = False) -> WindowMeter:
        meter = WindowMeter(cuda=device == 'cuda', sync_audit=sync_audit)
        trainer = h.quiet_trainer(max_epochs=1, limit_train_batches=1 + steps, callbacks=[meter, *self.callbacks],
                                  **trainer_options(self.precision, device))
        try:
            trainer.fit(self.contender.module, self.contender.train, self.contender.val)
        finally:
            meter.stop_audit()
        if meter.batches != steps:
            raise RuntimeError(f'{self.name}: trained {meter.batches} batches, expected {steps}')
        if keep:
            self.times.append(meter.seconds / steps)
            if meter.peak_mb is not None:
                self.peaks.append(meter.peak_mb)
                self.growths.append(meter.growth_mb)
        return meter

    def attempt(self, steps: int, device: str, keep: bool = True) -> None:
        """Fit once unless an earlier fit failed; record an error (out of memory included) instead of raising."""
        if self.error is not None:
            return
        try:
            self.fit(steps, device, keep)
        except Exception as error:  # one failing contender must not lose the others' figures
            self.error = 'out of memory' if isinstance(error, torch.cuda.OutOfMemoryError) \
                else f'{type(error).__name__}: {str(error)[:300]}'
            print(f'{self.name} ({self.precision}) failed: {self.error}', file=sys.stderr)
            release()

    def summary(self) -> dict:
        median = statistics.median(self.times) if self.times and self.error is None else None
        return {'name': self.name, 'precision': self.precision, 'steps': self.steps, 'error': self.error,
                'rounds': len(self.times), 'step_ms': None if median is None else round(1000 * median, 3),
                'peak_mb': round(max(self.peaks), 1) if self.peaks else None,
                'peak_growth_mb': round(max(self.growths), 1) if self.growths else None}


def trainer_options(precision: str, device: str) -> dict:
    """Lightning options for ``precision`` on ``device`` (fp16 on the CPU through an explicit plugin)."""
    options = {'accelerator': 'gpu' if device == 'cuda' else 'cpu', 'devices': 1}
    if device == 'cpu' and precision == '16-mixed':  # Lightning would switch a CPU run to bf16
        from pytorch_lightning.plugins.precision import MixedPrecision
        options['plugins'] = [MixedPrecision('16-mixed', 'cpu')]
    else:
        options['precision'] = precision
    return options


def release() -> None:
    """Free what a finished or failed fit left on the GPU."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_runs(names: list[str], precisions: list[str], width: float, batch: int, resolution: int, steps: int,
               nni_steps: int, device: str) -> tuple[list[Run], dict]:
    """Every contender (pinned to one random path) under every precision, on shared FakeData batches."""
    most = 1 + max(steps, nni_steps)
    train = fake_data(most, batch, resolution, device, seed=0)
    val = fake_data(most, batch, resolution, device, seed=1)
    space_of = lambda: s.hub_space(width)  # noqa: E731
    sample = s.random_sample(space_of(), 0)
    runs = []
    for name in names:
        factory, channels_last, slow = CONTENDERS[name]
        if factory is None:
            contender = h.frozen_contender(name, space_of().freeze(sample), train)
        else:
            strategy = factory()
            contender = h.oneshot_contender(name, strategy, space_of, train, val)
            pin(strategy, contender.module, sample)
        callbacks = [ChannelsLast()] if channels_last else []
        runs += [Run(name, p, contender, nni_steps if slow else steps, callbacks) for p in precisions]
    return runs, sample
