"""NNI 2.x's ``nni.retiarii.evaluator.pytorch.lightning``: NNI 3.0's Lightning evaluators, ``num_classes`` optional.

``import nni_proxyless.retiarii.evaluator.pytorch.lightning as pl`` then ``pl.Classification(...)``,
``pl.Regression(...)``, ``pl.Lightning(module, pl.Trainer(...), train_dataloaders=pl.DataLoader(...))``.

NNI 2.x's ``Classification`` had no ``num_classes``; NNI 3.0's requires it (torchmetrics >= 0.11 needs the number
of classes for its accuracy). Here, left out, it is inferred from the width of the model's output on the first
batch (stated in the log), so 2.x scripts run as written. Everything else is NNI 3.0's, unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

import nni
import torch
import torchmetrics
from torch import nn
from nni.nas.evaluator.pytorch import lightning as _nni
from nni.nas.evaluator.pytorch.lightning import (ClassificationModule, DataLoader, Lightning, LightningModule,
                                                 Regression, RegressionModule, Trainer)

__all__ = ['Classification', 'Regression', 'Lightning', 'LightningModule', 'DataLoader', 'Trainer',
           'ClassificationModule', 'RegressionModule']

_logger = logging.getLogger('nni.proxyless.retiarii')


class _InferredAccuracy(nn.Module):
    """Multiclass top-1 accuracy whose number of classes is the width of the first logits it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.accuracy: torchmetrics.Accuracy | None = None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.accuracy is None:
            if logits.dim() != 2:
                raise ValueError(f'Classification without num_classes infers it from the model\'s output, which must '
                                 f'be (batch, classes) logits; got shape {tuple(logits.shape)}. Pass '
                                 f'num_classes=... to pl.Classification.')
            num_classes = logits.shape[1]
            _logger.info('Classification: num_classes=%d, inferred from the width of the model\'s output (pass '
                         'num_classes=... to set it).', num_classes)
            self.accuracy = torchmetrics.Accuracy('multiclass', num_classes=num_classes).to(logits.device)
        return self.accuracy(logits, target)


@nni.trace
class Classification(_nni.Classification):
    """NNI 3.0's ``Classification`` evaluator (same arguments); ``num_classes`` may be left out, as in NNI 2.x.

    Args:
        num_classes: the number of classes of the accuracy metric; ``None`` (the default): the width of the
            model's output on the first batch, stated in the log.
        **kwargs: NNI 3.0's ``Classification`` arguments (``train_dataloaders``, ``val_dataloaders``,
            ``learning_rate``, ..., and the Lightning ``Trainer``'s, e.g. ``max_epochs``).

    Example::

        import nni_proxyless.retiarii.evaluator.pytorch.lightning as pl
        evaluator = pl.Classification(train_dataloaders=pl.DataLoader(train, batch_size=64),
                                      val_dataloaders=pl.DataLoader(val, batch_size=64), max_epochs=2)
    """

    def __init__(self, criterion: type[nn.Module] = nn.CrossEntropyLoss, learning_rate: float = 0.001,
                 weight_decay: float = 0., optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
                 train_dataloaders: Any = None, val_dataloaders: Any = None, datamodule: Any = None,
                 export_onnx: bool = False, train_dataloader: Any = None, num_classes: int | None = None,
                 **trainer_kwargs: Any) -> None:
        super().__init__(criterion, learning_rate, weight_decay, optimizer, train_dataloaders, val_dataloaders,
                         datamodule, export_onnx, train_dataloader, num_classes or 2, **trainer_kwargs)
        if num_classes is None:  # NNI's module with the placeholder's metric replaced
            self.module.metrics = nn.ModuleDict({'acc': _InferredAccuracy()})
