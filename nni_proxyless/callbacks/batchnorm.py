"""Batch-norm statistics of one architecture, recomputed on training batches before it is validated or exported.

A supernet's BatchNorm layers keep running statistics averaged over every path sampled so far; they belong to
no architecture. Validated or exported with them, the most probable architecture can score far below what its
weights can do (a digits space with BatchNorm: 0.21 against 0.77 with its own statistics). As Once-for-All and
single-path NAS do, the statistics are recomputed for the architecture at hand:

* before each validation, :class:`BatchNormRecalibration` (a Lightning callback) routes the supernet to the
  architecture validated (its most probable, within the export's latency limit if any) and recomputes its
  statistics; after the validation it puts the search's own
  statistics and momentum back, so the next weight step continues exactly as if there had been no validation;
* :meth:`BatchNormRecalibration.applied` does the same for any architecture inside a ``with`` block; every
  exported instance (``export_top_models(formatter='instance')``) is copied out of the supernet inside one.

A recalibration resets the running statistics of every ``torch.nn.modules.batchnorm._BatchNorm`` (BatchNorm1d,
2d, 3d, ``SyncBatchNorm``, and subclasses that slice their buffers), sets ``momentum=None`` (a cumulative
average: every batch counts equally), and runs the first ``batches`` batches of a pass over the training data
through the evaluator's ``training_step`` with the model in training mode and no gradients. The pass is seeded
(torch's global generator forked, and the loader's own generators saved and restored), so the same batches are
used every time, the training data's order and the global random stream are left alone, and every process of a
distributed search uses the same batches. ``SyncBatchNorm`` layers compute these statistics locally (the
processes see the same batches, and an export on one process alone must not wait for the others); under DDP the
statistics of a validation are moreover averaged over the processes (``trainer.strategy.reduce``), so they agree
even when a data module hands each process its own batches. Layers that no batch reached keep their statistics.
"""

from __future__ import annotations

import contextlib
import itertools
import types
from typing import Any, Callable, Iterable, Iterator

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..routing import Selection

__all__ = ['BatchNormRecalibration', 'batchnorm_layers', 'recalibrate']

Reduce = Callable[[torch.Tensor], torch.Tensor]


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """Every batch-norm layer of ``model`` that keeps running statistics (``SyncBatchNorm`` included)."""
    return [m for m in model.modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None]


class SavedStatistics:
    """The running statistics and momentum of batch-norm layers, to put back later."""

    def __init__(self, layers: list[_BatchNorm]):
        self._saved = [(layer, layer.running_mean.clone(), layer.running_var.clone(),
                        layer.num_batches_tracked.clone(), layer.momentum) for layer in layers]

    @torch.no_grad()
    def restore(self, only: Callable[[_BatchNorm], bool] = lambda layer: True) -> None:
        """Put back the saved statistics and momentum (of the layers ``only`` accepts)."""
        for layer, mean, var, tracked, momentum in self._saved:
            if only(layer):
                layer.running_mean.copy_(mean)
                layer.running_var.copy_(var)
                layer.num_batches_tracked.copy_(tracked)
                layer.momentum = momentum


def recalibrate(model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any],
                reduce: Reduce | None = None) -> int:
    """Recompute the running statistics of ``model``'s batch-norm layers on ``batches`` (cumulative average).

    Args:
        model: the model whose batch-norm layers are recalibrated; it is in training mode while ``forward``
            runs, then every module gets its own mode back.
        batches: the batches, each given to ``forward``.
        forward: runs one batch through ``model`` (called without gradients).
        reduce: averages a tensor over processes (``trainer.strategy.reduce``), or ``None``.

    Returns:
        How many batches were used. Layers that no batch reached keep the statistics they had.

    Example::

        recalibrate(model, itertools.islice(loader, 20), lambda batch: model(batch[0]))
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved = SavedStatistics(layers)
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    count = 0
    try:
        with training_mode(model, True), torch.no_grad(), _unsynchronised(layers):
            for batch in batches:
                forward(batch)
                count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    saved.restore(only=lambda layer: int(layer.num_batches_tracked) == 0)
    if reduce is not None:
        _average(layers, reduce)
    return count


@torch.no_grad()
def _average(layers: list[_BatchNorm], reduce: Reduce) -> None:
    """Average every layer's running mean and variance over processes, in one call."""
    buffers = [buffer for layer in layers for buffer in (layer.running_mean, layer.running_var)]
    averaged = reduce(torch.cat([buffer.reshape(-1).float() for buffer in buffers]))
    for buffer, chunk in zip(buffers, averaged.split([buffer.numel() for buffer in buffers])):
        buffer.copy_(chunk.view_as(buffer))


@contextlib.contextmanager
def _unsynchronised(layers: list[_BatchNorm]) -> Iterator[None]:
    """``SyncBatchNorm`` layers run as plain batch norm (local statistics, no collective call)."""
    synced = [layer for layer in layers if isinstance(layer, nn.SyncBatchNorm)]
    for layer in synced:
        layer.forward = types.MethodType(_BatchNorm.forward, layer)
    try:
        yield
    finally:
        for layer in synced:
            del layer.forward


@contextlib.contextmanager
def training_mode(model: nn.Module, mode: bool) -> Iterator[None]:
    """Inside the block every module of ``model`` is in training mode ``mode``; afterwards each module is back in
    its own mode (``model.train(was_training)`` would not restore submodules whose modes differed)."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        model.train(mode)
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def seeded_pass(loader: Iterable[Any], seed: int, limit: int | None) -> Iterator[Iterator[Any]]:
    """The first ``limit`` batches (``None``: all) of a pass over ``loader`` whose random draws all come from ``seed``.

    Torch's global generator is forked and seeded, and the loader's own generators (``DataLoader(generator=...)``,
    its sampler's) are seeded and restored afterwards: the same batches every time, on every process, with the
    data order of the training left alone. Random draws of the forward pass inside the block (dropout) are
    forked too.
    """
    generators = _loader_generators(loader)
    states = [generator.get_state() for generator in generators]
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for generator in generators:
                generator.manual_seed(seed)
            yield itertools.islice(iter(loader), limit)
    finally:
        for generator, state in zip(generators, states):
            generator.set_state(state)


def _loader_generators(loader: Any) -> list[torch.Generator]:
    batch_sampler = getattr(loader, 'batch_sampler', None)
    owners = [loader, getattr(loader, 'sampler', None), getattr(batch_sampler, 'sampler', None)]
    found: list[torch.Generator] = []
    for owner in owners:
        generator = getattr(owner, 'generator', None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


class BatchNormRecalibration(Callback):
    """Validates the search's top-1 export with batch-norm statistics of its own (see the module's text).

    The module it is attached to must be a :class:`~nni_proxyless.training.ProxylessModule` (it reads
    ``validated_selections``, ``route`` and ``training_forward``). Callback hooks run before the module's, so the supernet is routed here.

    Args:
        batches: training batches per recalibration (at least 1).
        train_loader: returns the training data loader (the evaluator's own, not Lightning's per-process copy).
        seed: returns the seed of the recalibration pass (the search's seed: same on every process).

    Example::

        trainer = Trainer(callbacks=[BatchNormRecalibration(batches=20, train_loader=lambda: loader,
                                                            seed=lambda: 0)])
    """

    def __init__(self, *, batches: int, train_loader: Callable[[], Iterable[Any]], seed: Callable[[], int]):
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise ValueError(f'batches must be an integer >= 1, got {batches!r}.')
        self.batches = batches
        self._train_loader = train_loader
        self._seed = seed
        self._saved: SavedStatistics | None = None

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._saved = SavedStatistics(batchnorm_layers(pl_module.model))
        pl_module.route(pl_module.validated_selections())
        self._recalibrate(pl_module, reduce=lambda tensor: trainer.strategy.reduce(tensor, reduce_op='mean'))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    @contextlib.contextmanager
    def applied(self, pl_module: LightningModule, selections: dict[str, Selection]) -> Iterator[None]:
        """Inside the block, the supernet runs ``selections`` with statistics recomputed for them; then as before."""
        saved = SavedStatistics(batchnorm_layers(pl_module.model))
        try:
            with pl_module.arch.routing.use(selections):
                self._recalibrate(pl_module)
                yield
        finally:
            saved.restore()

    def _recalibrate(self, pl_module: LightningModule, reduce: Reduce | None = None) -> int:
        if not batchnorm_layers(pl_module.model):
            return 0
        loader = self._train_loader()
        if loader is None:
            raise ValueError('Batch-norm recalibration needs training data: give the evaluator train_dataloaders '
                             '(or a datamodule with train_dataloader), or set bn_recalibration_batches=0.')
        with seeded_pass(loader, self._seed(), self.batches) as batches:
            return recalibrate(pl_module.model, batches, pl_module.training_forward, reduce)

    def _restore(self) -> None:
        if self._saved is not None:
            self._saved.restore()
            self._saved = None
