"""``DummyInputCheck``: warns when the input shape the latency is priced at is not the data's."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

__all__ = ['DummyInputCheck']

_logger = logging.getLogger('nni.proxyless')


class DummyInputCheck(Callback):
    """On the first training batch, warn (once, on the first process) if its input's shape differs from
    ``dummy_input`` beyond the batch size: the latency table was priced at ``dummy_input``, so a latency loss or
    ``latency_target`` would then steer the search by the costs of another input size.

    Only ``(input, target)`` batches whose input is a tensor are checked.

    Args:
        dummy_input: the shape the latency table was priced at, e.g. ``(1, 3, 224, 224)``.
    """

    def __init__(self, dummy_input: Sequence[int]) -> None:
        self.dummy_input = tuple(int(d) for d in dummy_input)
        self.checked = False

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.checked:
            return
        self.checked = True
        x = batch[0] if isinstance(batch, (list, tuple)) and batch else None
        if not isinstance(x, torch.Tensor) or not self.dummy_input or not trainer.is_global_zero:
            return
        if tuple(x.shape[1:]) != self.dummy_input[1:]:
            fitting = (1, *x.shape[1:])
            _logger.warning('dummy_input=%s does not match the first training batch\'s input, of shape %s: the '
                            'latency table is priced at dummy_input, not at the size of the data. Pass '
                            'dummy_input=%s (the batch size may differ).', self.dummy_input, tuple(x.shape), fitting)
