"""``ProxylessTrainer``: NNI 2.x's ProxylessNAS interface, run by the :class:`~nni_proxyless.Proxyless` strategy.

NNI 3.0 removed the one-shot trainers. This class keeps the seed page's constructor, ``train()`` and
``export(path)``, and maps them onto NNI 3.0's pieces; it holds no search logic of its own:

* ``loss``, ``metrics`` and ``optimizer`` become a small NNI ``LightningModule`` (the weight loss, the logged
  figures, the weight optimiser);
* ``dataset`` is split in halves, the first read for the weights (``train_dataloaders``), the second for the
  architecture (``val_dataloaders``: the strategy trains the logits on it and validates the argmax on it);
* ``num_epochs``, ``device`` and ``log_frequency`` configure NNI's ``Lightning`` evaluator and its ``Trainer``;
* the search arguments go to ``Proxyless(arch_update_every=1, ...)`` (NNI 2.x updated the architecture at
  every step), run through ``NasExperiment(model, evaluator, strategy)``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset
from nni.nas.evaluator.pytorch.lightning import Lightning, Trainer
from nni.nas.experiment import NasExperiment
from nni.nas.nn.pytorch import ModelSpace

from . import _checks
from ._io import write_json_atomically
from ._trainer_parts import LossModule, half_loaders
from .callbacks.step_logger import Metrics, StepLogger
from .export import Architecture
from .latency import LatencyLoss
from .ops import MixedOp
from .strategy import Proxyless

__all__ = ['ProxylessTrainer']


class ProxylessTrainer:
    """ProxylessNAS with NNI 2.x's ``ProxylessTrainer`` interface, on NNI 3.0 and the ``Proxyless`` strategy.

    Each step first trains the weights of one sampled path on a batch of the dataset's first half, then (from
    ``warmup_epochs`` on) the architecture on a batch of its second half. After every epoch the most probable
    architecture is validated on the second half.

    Args:
        model: the search space, an NNI 3.0 ``nni.nas.nn.pytorch.ModelSpace`` whose ``__init__`` creates its
            ``LayerChoice`` / ``InputChoice`` / ``Repeat``. It is turned into the supernet in place by ``train()``.
        loss: ``loss(logits, target) -> scalar tensor``, the weights' loss (and the task term of the
            architecture's loss), e.g. ``nn.CrossEntropyLoss()``.
        metrics: ``metrics(logits, target) -> dict`` of figures (e.g. ``{'acc1': 0.9, 'acc5': 1.0}``), logged with
            the loss every ``log_frequency`` steps and, prefixed ``val_``, after every epoch.
        optimizer: the weight optimiser, built on ``model.parameters()`` (before ``train()``: the supernet keeps
            the candidate modules, so it updates the same parameters).
        num_epochs: epochs over the first half of ``dataset``. Default 120.
        dataset: a map-style dataset of ``(input, target)`` pairs with ``len()``, at least 2 items. Required:
            the default ``None`` (the seed page's placeholder) is refused.
        warmup_epochs: epochs of weight training before the architecture starts to move. Default 0.
        batch_size: samples per batch, for both halves. Default 64.
        workers: data-loading worker processes per loader (0: load in the main process). Default 4.
        device: ``'cpu'`` (default), ``'cuda'``, ``'cuda:<index>'`` or a ``torch.device``: the one device the
            search runs on (NNI 2.x's data parallelism is not reproduced; use ``Proxyless`` with a
            distributed Lightning evaluator for several devices).
        log_frequency: log the loss, the metrics and (with a latency table) the most probable architecture's
            latency every this many steps (``None``, the default: only per-epoch logs).
        arc_learning_rate: learning rate of the architecture optimiser (Adam, betas (0, 0.999)). Default 1e-3.
        grad_reg_loss_type: hardware term of the architecture loss, used with ``applied_hardware``:
            ``'add#linear'`` (default), ``'mul#log'`` or ``None`` (no latency term).
        grad_reg_loss_params: required with ``applied_hardware`` and a ``grad_reg_loss_type``:
            ``{'lambda': float}`` for ``'add#linear'``, ``{'alpha': float, 'beta': float}`` for ``'mul#log'``
            (official values: lambda 0.1; alpha 0.2, beta 0.3). Default ``None``.
        applied_hardware: where latency comes from: ``None`` (default: no latency term), ``'cpu'`` / ``'cuda'``
            (measured here, cached under ``$NNI_PROXYLESS_CACHE``), ``'flops'`` (a proxy, in MFLOPs), an nn-Meter
            device (``'cortexA76cpu_tflite21'``, ...), a latency table (``.json``) or a predictor object; see
            :class:`~nni_proxyless.Proxyless`.
        dummy_input: input shape the latency is measured at. Default ``(1, 3, 224, 224)``.
        ref_latency: reference latency in milliseconds (MFLOPs with ``'flops'``). Default 65.0.
        bn_recalibration_batches: batches of the first half that recompute the BatchNorm statistics of the most
            probable architecture before each validation, and of exported instances (not in NNI 2.x; 0 turns it
            off). Default 20.

    Attributes:
        strategy: the :class:`~nni_proxyless.Proxyless` strategy that runs the search.
        evaluator: NNI's ``Lightning`` evaluator built from the arguments.
        experiment: the ``NasExperiment``; change ``experiment.config`` (e.g. ``experiment_working_directory``)
            before ``train()`` if needed.

    Raises:
        TypeError: ``model`` is not an NNI 3.0 ``ModelSpace``, or ``loss``, ``metrics``, ``optimizer`` or
            ``dataset`` has the wrong type.
        ValueError: an argument is missing or out of range (the message names it and what is allowed).

    Example::

        import torch
        from torch import nn
        from sklearn.datasets import load_digits
        from nni.nas.nn.pytorch import LayerChoice, ModelSpace
        from nni_proxyless.trainer import ProxylessTrainer

        class Space(ModelSpace):
            def __init__(self):
                super().__init__()
                self.hidden = LayerChoice({'one': nn.Linear(64, 32),
                                           'two': nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32))},
                                          label='hidden')
                self.head = nn.Linear(32, 10)

            def forward(self, x):
                return self.head(torch.relu(self.hidden(x.flatten(1))))

        x, y = load_digits(return_X_y=True)
        dataset = torch.utils.data.TensorDataset(torch.tensor(x, dtype=torch.float32) / 16, torch.tensor(y))
        model = Space()
        trainer = ProxylessTrainer(model, loss=nn.CrossEntropyLoss(),
                                   metrics=lambda out, y: {'acc': (out.argmax(1) == y).float().mean()},
                                   optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                                   num_epochs=2, dataset=dataset, workers=0)
        trainer.train()
        print(trainer.export('arch.json'))      # e.g. {'hidden': 'two'}
    """

    def __init__(self, model: ModelSpace, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 metrics: Metrics, optimizer: torch.optim.Optimizer, num_epochs: int = 120,
                 dataset: Dataset | None = None, warmup_epochs: int = 0, batch_size: int = 64, workers: int = 4,
                 device: str | torch.device = 'cpu', log_frequency: int | None = None,
                 arc_learning_rate: float = 1e-3, grad_reg_loss_type: str | None = 'add#linear',
                 grad_reg_loss_params: dict[str, float] | None = None, applied_hardware: Any = None,
                 dummy_input: Sequence[int] = (1, 3, 224, 224), ref_latency: float = 65.0,
                 bn_recalibration_batches: int = 20):
        _check_model(model)
        _checks.function('loss', loss, 'loss(logits, target)')
        _checks.function('metrics', metrics, 'metrics(logits, target)')
        _check_optimizer(optimizer, model)
        _check_dataset(dataset)
        _check_counts(num_epochs=num_epochs, warmup_epochs=warmup_epochs, batch_size=batch_size, workers=workers,
                      log_frequency=log_frequency)
        accelerator, devices = _lightning_device(device)
        if applied_hardware is not None:  # the seed requires the loss's parameters: no official values filled in
            LatencyLoss(grad_reg_loss_type, grad_reg_loss_params, ref_latency)
        self.strategy = Proxyless(arc_learning_rate=arc_learning_rate, warmup_epochs=warmup_epochs,
                                  arch_update_every=1, grad_reg_loss_type=grad_reg_loss_type,
                                  grad_reg_loss_params=grad_reg_loss_params, applied_hardware=applied_hardware,
                                  dummy_input=dummy_input, ref_latency=ref_latency,
                                  bn_recalibration_batches=bn_recalibration_batches)
        train_loader, arch_loader = half_loaders(dataset, batch_size, workers)
        trainer = Trainer(max_epochs=num_epochs, accelerator=accelerator, devices=devices,
                          log_every_n_steps=log_frequency or 50, logger=False, enable_checkpointing=False,
                          enable_model_summary=False, callbacks=[StepLogger(metrics, log_frequency, num_epochs)])
        self.evaluator = Lightning(LossModule(loss, metrics, optimizer), trainer,
                                   train_dataloaders=train_loader, val_dataloaders=arch_loader)
        self.experiment = NasExperiment(model, self.evaluator, self.strategy)
        self._started = self._finished = False

    def train(self) -> None:
        """Run the search: ``num_epochs`` epochs of weight and architecture steps.

        Raises:
            RuntimeError: ``train()`` already ran (the model space is now a supernet; build a new one), or the
                search failed.
        """
        if self._started:
            raise RuntimeError('train() already ran on this ProxylessTrainer; its model space is now a supernet. '
                               'Create a new model space, optimizer and ProxylessTrainer to search again.')
        self._started = True
        succeeded = self.experiment.run()
        self.experiment.stop()
        if succeeded is False:
            raise RuntimeError('The search failed; see the log above for the error.')
        self._finished = True

    def export(self, path: str | os.PathLike | None = None) -> Architecture:
        """The most probable architecture (argmax of every label), written as JSON to ``path`` if given.

        The file (written atomically) holds the plain dict ``model_space.freeze(...)`` takes; the returned
        :class:`~nni_proxyless.Architecture` is that dict, with its ``probability`` (and ``latency``) attributes.

        Raises:
            RuntimeError: ``train()`` has not run yet.
        """
        if not self._finished:
            raise RuntimeError('Nothing to export yet: call trainer.train() (to its end) before trainer.export().')
        architecture = self.strategy.top_architectures(1)[0]
        if path is not None:
            write_json_atomically(path, dict(architecture))
        return architecture


# ------------------------------------------------------------------------------------------ validation


def _check_model(model: Any) -> None:
    if not isinstance(model, ModelSpace):
        raise TypeError(
            f'ProxylessTrainer needs an NNI 3.0 model space, got {type(model).__name__} (a plain '
            f'{"nn.Module" if isinstance(model, torch.nn.Module) else "object"}). Convert it: make the class inherit '
            'from nni.nas.nn.pytorch.ModelSpace instead of nn.Module, import LayerChoice / InputChoice / Repeat from '
            'nni.nas.nn.pytorch (nni.retiarii is gone in NNI 3.0), and create them inside its __init__, after '
            'super().__init__().')
    if any(isinstance(module, MixedOp) for module in model.modules()):
        raise ValueError(f'The model space {type(model).__name__} was already searched (train() turns it into a '
                         'supernet in place); build a new instance, and its optimizer, for another search.')


def _check_optimizer(optimizer: Any, model: ModelSpace) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        _checks.fail('optimizer', 'a torch.optim.Optimizer built on model.parameters()', optimizer, TypeError)
    own = {id(p) for p in model.parameters()}
    if not any(id(p) in own for group in optimizer.param_groups for p in group['params']):
        raise ValueError('optimizer holds none of the model\'s parameters: build it on model.parameters() of the '
                         'model space given to ProxylessTrainer.')


def _check_dataset(dataset: Any) -> None:
    if dataset is None:
        raise ValueError('dataset is required: pass a map-style torch Dataset of (input, target) pairs (the seed '
                         "page's dataset=None is a placeholder). It is split in halves: weights, architecture.")
    if not hasattr(dataset, '__getitem__') or not hasattr(dataset, '__len__'):
        raise TypeError(f'dataset must be a map-style Dataset with __getitem__ and __len__, got '
                        f'{type(dataset).__name__}.')
    if len(dataset) < 2:
        raise ValueError(f'dataset has {len(dataset)} item(s); it needs at least 2 (one per half).')


def _check_counts(**counts: Any) -> None:
    lowest = {'num_epochs': 1, 'warmup_epochs': 0, 'batch_size': 1, 'workers': 0, 'log_frequency': 1}
    for name, value in counts.items():
        _checks.integer(name, value, low=lowest[name], optional=name == 'log_frequency')
    if counts['warmup_epochs'] >= counts['num_epochs']:
        raise ValueError(f"warmup_epochs={counts['warmup_epochs']} leaves no epoch of num_epochs="
                         f"{counts['num_epochs']} to train the architecture; make it smaller than num_epochs.")


def _lightning_device(device: Any) -> tuple[str, Any]:
    """Lightning's ``accelerator`` and ``devices`` for ``'cpu'``, ``'cuda'``, ``'cuda:<i>'`` or a torch.device."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ('cpu', 'cuda'):
        _checks.fail('device', "'cpu', 'cuda', 'cuda:<index>' or a torch.device", device)
    if parsed.type == 'cpu':
        return 'cpu', 1
    if not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count():
        raise ValueError(f'device={device!r}, but torch sees {torch.cuda.device_count()} CUDA device(s) here.')
    return 'gpu', [parsed.index or 0]
