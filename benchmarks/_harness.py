"""Shared pieces of the benchmarks: NNI's hub ProxylessNAS space, fake 32x32 data, timed Lightning fits."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

import nni_proxyless  # noqa: F401  (quiets NNI's warnings about this torch release)
from nni.nas.evaluator.pytorch import Classification, DataLoader, Lightning, Trainer
from nni.nas.hub.pytorch import ProxylessNAS
from nni.runtime.log import silence_stdout
from pytorch_lightning import Callback

silence_stdout()


def hub_space(width_mult: float = 0.35, num_labels: int = 10) -> ProxylessNAS:
    """NNI's ProxylessNAS hub space, the standard real-world space for cost figures."""
    return ProxylessNAS(num_labels=num_labels, width_mult=width_mult)


def fake_loader(batches: int, batch_size: int, resolution: int = 32, seed: int = 0) -> DataLoader:
    """Random images and labels (10 classes), fixed by ``seed``, as a traced NNI DataLoader."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batches * batch_size, 3, resolution, resolution, generator=gen)
    y = torch.randint(10, (batches * batch_size,), generator=gen)
    return DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def quiet_trainer(**kwargs) -> Trainer:
    """A CPU Lightning trainer without logging, checkpoints or progress bars."""
    options = dict(accelerator='cpu', logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    options.update(kwargs)
    return Trainer(**options)


class EpochTimer(Callback):
    """Wall time of the training batches of each fit (set-up and validation excluded)."""

    def __init__(self):
        self.seconds = 0.0
        self.batches = 0
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds += time.perf_counter() - self._start
        self.batches += 1


@dataclass
class Contender:
    """Something to train for timing: a Lightning module and its data, refit with a fresh trainer per round."""

    name: str
    module: object
    train: object
    val: object = None
    times: list[float] = field(default_factory=list)

    def fit_once(self, batches: int) -> None:
        timer = EpochTimer()
        # one epoch of ``batches`` batches; not max_steps, which counts architecture optimiser steps too
        trainer = quiet_trainer(max_epochs=1, limit_train_batches=batches, callbacks=[timer])
        trainer.fit(self.module, self.train, self.val)
        if timer.batches != batches:
            raise RuntimeError(f'{self.name}: trained {timer.batches} batches, expected {batches}')
        self.times.append(timer.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def interleaved(contenders: list[Contender], rounds: int, steps: int, warmup: int = 1) -> None:
    """Fit every contender for ``steps`` batches, round-robin, ``warmup + rounds`` times; keep the last rounds."""
    for round_index in range(warmup + rounds):
        for contender in contenders:
            contender.fit_once(steps)
            if round_index < warmup:
                contender.times.clear()


def oneshot_contender(name: str, strategy, space_factory: Callable, train, val, learning_rate=0.05) -> Contender:
    """Mutate a fresh space and evaluator with ``strategy`` (as NNI's engine does) and wrap the result."""
    space = space_factory()
    evaluator = Classification(train_dataloaders=train, val_dataloaders=val, num_classes=10,
                               learning_rate=learning_rate, optimizer=torch.optim.SGD)
    supernet = strategy.mutate_model(space)
    lightning: Lightning = strategy.mutate_evaluator(evaluator)
    lightning.module.set_model(supernet)
    return Contender(name, lightning.module, lightning.train_dataloaders, lightning.val_dataloaders)


def frozen_contender(name: str, model: torch.nn.Module, train, learning_rate=0.05) -> Contender:
    """A fixed architecture trained by NNI's Classification module."""
    evaluator = Classification(train_dataloaders=train, num_classes=10, learning_rate=learning_rate,
                               optimizer=torch.optim.SGD)
    evaluator.module.set_model(model)
    return Contender(name, evaluator.module, train)


def machine() -> str:
    """One line describing where the figures were measured."""
    return (f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), '
            f'torch {torch.__version__}, Python {platform.python_version()}')
