"""The pieces of :class:`~nni_proxyless.trainer.ProxylessTrainer` that NNI 3.0 runs: the seed interface's loss,
metrics and optimizer as an NNI Lightning module, and its dataset halves (its step logs are
:class:`~nni_proxyless.callbacks.StepLogger`).
"""

from __future__ import annotations

from typing import Any, Callable

import nni
import torch
from torch.utils.data import Dataset, SubsetRandomSampler
from nni.nas.evaluator.pytorch import DataLoader
from nni.nas.evaluator.pytorch.lightning import LightningModule

from .callbacks.step_logger import Metrics, metric_figures

__all__ = ['LossModule', 'half_loaders']


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
        figures = {'loss': self.criterion(logits, y), **metric_figures(self.metrics(logits, y))}
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


def half_loaders(dataset: Dataset, batch_size: int, workers: int) -> tuple[DataLoader, DataLoader]:
    """Loaders over the first half (weights) and the second half (architecture), each in random order."""
    split = len(dataset) // 2
    indices = list(range(len(dataset)))
    return tuple(DataLoader(dataset, batch_size=batch_size, sampler=SubsetRandomSampler(part), num_workers=workers)
                 for part in (indices[:split], indices[split:]))
