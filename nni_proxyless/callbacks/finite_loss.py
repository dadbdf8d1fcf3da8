"""Stopping a search whose loss is not finite, without making every step wait for the GPU."""

from __future__ import annotations

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

__all__ = ['FiniteLossCheck']


class FiniteLossCheck(Callback):
    """Raises ``FloatingPointError`` when a loss is NaN or infinite.

    A loss on the CPU is checked at once. For a CUDA loss, reading it would make the host wait for every queued
    kernel at each step; instead its finiteness is copied to pinned host memory without waiting, and read at the
    next check (or :meth:`flush`), once the event recorded behind the copy has passed: the search then stops one
    step later, having never synchronised with the device for this check.

    The training module calls it with each step's loss (the architecture step's loss is not an output Lightning
    shows callbacks); as a callback it reads the last pending check when training ends.
    """

    def __init__(self):
        self._pending: tuple[torch.Tensor, torch.cuda.Event, torch.Tensor, str] | None = None
        self._host: torch.Tensor | None = None

    def __call__(self, loss: torch.Tensor, where: str) -> None:
        """Check ``loss`` (of the ``where`` step): now on the CPU, at the next call for a CUDA loss."""
        self.flush()
        finite = torch.isfinite(loss.detach()).all()
        if loss.device.type != 'cuda':
            if not bool(finite):
                _stop(loss, where)
            return
        if self._host is None:
            self._host = torch.empty((), dtype=torch.bool, pin_memory=True)
        self._host.copy_(finite, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._pending = (self._host, event, loss.detach(), where)

    def flush(self) -> None:
        """Read the pending CUDA check, if any (waits for that loss only, not for later work)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        host, event, loss, where = pending
        event.synchronize()
        if not bool(host):
            _stop(loss, where)


    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.flush()


def _stop(loss: torch.Tensor, where: str) -> None:
    raise FloatingPointError(f'The loss became {loss.float().mean().item()} in the {where}; stopping the search. '
                             'Lower the learning rate or check the data; the last checkpoint is kept.')
