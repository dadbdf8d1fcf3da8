"""The pieces of :class:`~nni_proxyless.trainer.ProxylessTrainer` that NNI 3.0 runs: the seed interface's loss,
metrics and optimizer as an NNI Lightning module, its step logs as a Lightning callback, its dataset halves.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

import nni
import torch
from pytorch_lightning import Callback
from torch.utils.data import Dataset, SubsetRandomSampler
from nni.nas.evaluator.pytorch import DataLoader
from nni.nas.evaluator.pytorch.lightning import LightningModule

__all__ = ['Metrics', 'LossModule', 'StepLogger', 'half_loaders']

_logger = logging.getLogger('nni.proxyless')

Metrics = Callable[[torch.Tensor, torch.Tensor], Mapping[str, Any]]


class LossModule(LightningModule):
    """The weight loss, figures and optimiser of the seed's interface, as an NNI Lightning module."""

    def __init__(self, loss: Callable, metrics: Metrics, optimizer: torch.optim.Optimizer):
        super().__init__()
        self.criterion = loss
        self.metrics = metrics
        self.weight_optimizer = optimizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self.model(x)
        loss = self.criterion(logits, y)
        self.log('train_loss', loss.detach(), prog_bar=True)
        return {'loss': loss, 'logits': logits.detach()}

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        figures = {'loss': self.criterion(logits, y), **_figures(self.metrics(logits, y))}
        self.log_dict({f'val_{name}': float(value) for name, value in figures.items()}, batch_size=len(y),
                      prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.weight_optimizer

    def on_validation_epoch_end(self) -> None:
        report = self._report()
        if report is not None and not self.trainer.sanity_checking:
            nni.report_intermediate_result(report)

    def on_fit_end(self) -> None:
        report = self._report()
        if report is not None:
            nni.report_final_result(report)

    def _report(self) -> dict[str, float] | None:
        """The last validation figures; ``default`` is the first metric (the loss when there are none)."""
        figures = {name: float(value) for name, value in self.trainer.callback_metrics.items()
                   if name.startswith('val_')}
        if not figures:
            return None
        metric_names = [name for name in figures if name != 'val_loss']
        return {'default': figures[(metric_names or ['val_loss'])[0]], **figures}


class StepLogger(Callback):
    """Logs the loss, the metrics and the argmax latency every ``log_frequency`` steps, and each validation."""

    def __init__(self, metrics: Metrics, log_frequency: int | None, num_epochs: int):
        self.metrics, self.log_frequency, self.num_epochs = metrics, log_frequency, num_epochs

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.log_frequency is None or batch_idx % self.log_frequency != 0 or not isinstance(outputs, dict):
            return
        with torch.no_grad():
            figures = {'loss': float(outputs['loss']), **_figures(self.metrics(outputs['logits'], batch[1]))}
        latency = getattr(pl_module, 'latency', None)
        if latency is not None:
            figures[f'latency_{latency.table.unit}'] = latency.table.predict(pl_module.arch.argmax())
        _logger.info('Epoch [%d/%d] Step [%d/%d]  %s', trainer.current_epoch + 1, self.num_epochs, batch_idx + 1,
                     trainer.num_training_batches, _shown(figures))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        figures = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith('val_')}
        _logger.info('Epoch [%d/%d] most probable architecture: %s', trainer.current_epoch + 1, self.num_epochs,
                     _shown(figures))


def _figures(values: Any) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise TypeError(f"metrics(logits, target) must return a dict of figures such as {{'acc1': 0.9}}, "
                        f'got {type(values).__name__}.')
    return {str(name): float(value) for name, value in values.items()}


def _shown(figures: Mapping[str, float]) -> str:
    return '  '.join(f'{name} {value:.4g}' for name, value in figures.items())


def half_loaders(dataset: Dataset, batch_size: int, workers: int) -> tuple[DataLoader, DataLoader]:
    """Loaders over the first half (weights) and the second half (architecture), each in random order."""
    split = len(dataset) // 2
    indices = list(range(len(dataset)))
    return tuple(DataLoader(dataset, batch_size=batch_size, sampler=SubsetRandomSampler(part), num_workers=workers)
                 for part in (indices[:split], indices[split:]))
