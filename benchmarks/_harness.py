"""Shared pieces of the benchmarks: timed Lightning fits, the contenders, the machine line, JSON output.

Timing convention (DESIGN section 7): the things compared are fitted round-robin in one process with one torch
thread; each figure is the median over rounds of the training batches' wall time (set-up excluded), and results
are ratios to a baseline measured in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import nni_proxyless  # noqa: F401  (quiets NNI's warnings about this torch release)
from nni.nas.evaluator.pytorch import Classification, Lightning, Trainer
from nni.runtime.log import silence_stdout
from nni_proxyless import Proxyless
from pytorch_lightning import Callback

silence_stdout()


def quiet_trainer(**kwargs) -> Trainer:
    """A CPU Lightning trainer without logging, checkpoints or progress bars."""
    options = dict(accelerator='cpu', logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    options.update(kwargs)
    return Trainer(**options)


def quiet_lightning() -> None:
    """Keep Lightning's per-fit banners (GPU available, tips, `max_epochs` reached) out of the output."""
    import logging
    import warnings
    warnings.filterwarnings('ignore', message='You defined a `validation_step` but have no `val_dataloader`')
    warnings.filterwarnings('ignore', message=r'`isinstance\(treespec, LeafSpec\)` is deprecated')
    for name in ('pytorch_lightning', 'lightning.pytorch', 'lightning_fabric', 'lightning.fabric'):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger('nni').setLevel(logging.WARNING)


class EpochTimer(Callback):
    """Wall time of the training batches of a fit after the first ``skip`` ones (set-up, validation excluded).

    The first batch of every fit carries one-time work that a long search pays once (optimiser state, our
    one-time candidate shape check, Lightning's first-batch hooks), so it is run but not timed.
    """

    def __init__(self, skip: int = 1):
        self.skip = skip
        self.seconds = 0.0
        self.batches = 0
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= self.skip:
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

    def fit_once(self, batches: int, callbacks: list | None = None) -> float:
        """Train one epoch of ``1 + batches`` batches; returns (and keeps) the wall time of the last ``batches``."""
        timer = EpochTimer(skip=1)
        # one epoch; not max_steps, which counts architecture optimiser steps too
        trainer = quiet_trainer(max_epochs=1, limit_train_batches=1 + batches, callbacks=[timer, *(callbacks or [])])
        trainer.fit(self.module, self.train, self.val)
        if timer.batches != batches:
            raise RuntimeError(f'{self.name}: trained {timer.batches} batches, expected {batches}')
        self.times.append(timer.seconds)
        return timer.seconds

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def interleaved(contenders: list[Contender], rounds: int, steps: int, warmup_steps: int = 2) -> None:
    """One warm-up fit of ``warmup_steps`` batches each, then ``rounds`` round-robin fits of ``steps`` batches."""
    for contender in contenders:
        contender.fit_once(warmup_steps)
        contender.times.clear()
    for _ in range(rounds):
        for contender in contenders:
            contender.fit_once(steps)


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


def nni_strategy(name: str) -> Callable[..., Any]:
    """NNI 3.0's built-in one-shot strategy class ``name`` (``Proxyless``, ``DARTS``) from its strategy module."""
    from nni.nas.oneshot.pytorch import strategy
    return getattr(strategy, name)


# The official architecture learning rate: a timed fit is one short epoch, in which arc_learning_rate='auto'
# would make the distribution, and so the timed paths, collapse after a step or two.
OFFICIAL = dict(arc_learning_rate=1e-3)

# The search contenders of the cost, memory and scaling figures: display name -> strategy factory.
STRATEGIES: dict[str, Callable[[], Any]] = {
    'ours: weight step only': lambda: Proxyless(warmup_epochs=10 ** 6, seed=0, **OFFICIAL),
    'ours: search, arch every 5': lambda: Proxyless(arch_update_every=5, seed=0, **OFFICIAL),
    'ours: search, arch every 1': lambda: Proxyless(arch_update_every=1, seed=0, **OFFICIAL),
    'ours: search full_v2, every 5': lambda: Proxyless(arch_update_every=5, binary_mode='full_v2', seed=0,
                                                        **OFFICIAL),
    'ours: REINFORCE, every 5': lambda: Proxyless(arch_update='reinforce', arch_update_every=5, seed=0, **OFFICIAL),
    'NNI Proxyless: weight step only': lambda: nni_strategy('Proxyless')(warmup_epochs=10 ** 6),
    'NNI Proxyless: search': lambda: nni_strategy('Proxyless')(),
    'NNI DARTS: search': lambda: nni_strategy('DARTS')(),
}


def strategy_names(include: str) -> list[str]:
    """Names of :data:`STRATEGIES` containing any ``|``-separated part of ``include`` ('' keeps all)."""
    parts = [p.strip() for p in include.split('|') if p.strip()]
    return [name for name in STRATEGIES if not parts or any(p in name for p in parts)]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or what ``platform`` knows)."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line describing where the figures were measured."""
    return (f'{cpu_name()} ({os.cpu_count()} cores), {torch.get_num_threads()} torch thread(s), '
            f'torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}')


def load_average() -> float:
    """The 1-minute load average (other work on the machine while measuring)."""
    return os.getloadavg()[0]


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has: ``--quick`` and ``--json``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='a tiny run that checks the script works')
    parser.add_argument('--json', help='write the figures to this file')
    return parser


def start(script: str, argv: list[str] | None) -> dict[str, Any]:
    """The common header of a result: command, machine, load average at start; one torch thread from now on."""
    torch.set_num_threads(1)
    quiet_lightning()
    given = list(sys.argv[1:] if argv is None else argv)
    if '--json' in given:  # where the figures go is not part of what reproduces them
        del given[given.index('--json'):given.index('--json') + 2]
    args = ' '.join(given)
    return {'command': f'python benchmarks/{script} {args}'.strip(), 'machine': machine(),
            'load_average_start': round(load_average(), 2), 'started': time.strftime('%Y-%m-%d %H:%M:%S')}


def finish(result: dict[str, Any], json_path: str | None, started: float) -> dict[str, Any]:
    """Add the load average at the end and the wall time, print the result, write it to ``json_path``."""
    result['load_average_end'] = round(load_average(), 2)
    result['wall_seconds'] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text + '\n')
    return result


def label_probabilities(module) -> dict[str, dict[Any, float]]:
    """Each label's candidate probabilities in a one-shot module: ours (``module.arch``) or NNI's (export_probs)."""
    arch = getattr(module, 'arch', None)
    if arch is not None and hasattr(arch, 'probs'):
        return {label: dict(zip(choice.values, arch.probs(label).tolist())) for label, choice in arch.choices.items()}
    return {label: {value: float(p) for value, p in probs.items()} for label, probs in module.export_probs().items()}


def argmax_of(probabilities: dict[str, dict[Any, float]]) -> dict[str, Any]:
    """The most probable value of every label (the first one on ties)."""
    return {label: max(probs, key=lambda value: probs[value]) for label, probs in probabilities.items()}


def entropy_of(probabilities: dict[str, dict[Any, float]]) -> float:
    """Sum over labels of the entropy of each label's distribution, in nats."""
    import math
    return sum(-p * math.log(p) for probs in probabilities.values() for p in probs.values() if p > 0)


class DistributionRecorder(Callback):
    """Records every label's probabilities at the start of the fit and at the end of every training epoch."""

    def __init__(self):
        self.history: list[dict[str, dict[Any, float]]] = []

    def on_train_start(self, trainer, pl_module):
        self.history.append(label_probabilities(pl_module))

    def on_train_epoch_end(self, trainer, pl_module):
        self.history.append(label_probabilities(pl_module))

    def argmaxes(self) -> list[dict[str, Any]]:
        return [argmax_of(probs) for probs in self.history]

    def entropies(self) -> list[float]:
        return [entropy_of(probs) for probs in self.history]

    def settled_at(self) -> int:
        """The first epoch from which the most probable architecture never changes again (0: before training)."""
        argmaxes = self.argmaxes()
        settled = len(argmaxes) - 1
        while settled > 0 and argmaxes[settled - 1] == argmaxes[-1]:
            settled -= 1
        return settled
