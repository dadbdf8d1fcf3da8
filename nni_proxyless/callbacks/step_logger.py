"""The step logs of :class:`~nni_proxyless.trainer.ProxylessTrainer` (NNI 2.x's ``log_frequency``)."""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

import torch
from pytorch_lightning import Callback

__all__ = ['Metrics', 'StepLogger', 'metric_figures']

_logger = logging.getLogger('nni.proxyless')

Metrics = Callable[[torch.Tensor, torch.Tensor], Mapping[str, Any]]
"""The seed interface's ``metrics(logits, target)``: a dict of figures such as ``{'acc1': 0.9}``."""


class StepLogger(Callback):
    """Logs the loss, the metrics and the argmax latency every ``log_frequency`` steps, and each validation."""

    def __init__(self, metrics: Metrics, log_frequency: int | None, num_epochs: int):
        self.metrics, self.log_frequency, self.num_epochs = metrics, log_frequency, num_epochs

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.log_frequency is None or batch_idx % self.log_frequency != 0 or not isinstance(outputs, dict):
            return
        with torch.no_grad():
            figures = {'loss': float(outputs['loss']), **metric_figures(self.metrics(outputs['logits'], batch[1]))}
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


def metric_figures(values: Any) -> dict[str, float]:
    """``metrics``' output as floats; refuses anything but a mapping."""
    if not isinstance(values, Mapping):
        raise TypeError(f"metrics(logits, target) must return a dict of figures such as {{'acc1': 0.9}}, "
                        f'got {type(values).__name__}.')
    return {str(name): float(value) for name, value in values.items()}


def _shown(figures: Mapping[str, float]) -> str:
    return '  '.join(f'{name} {value:.4g}' for name, value in figures.items())


