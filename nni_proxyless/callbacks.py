"""Lightning callbacks that show a search while it runs (logs, progress bar, TensorBoard scalars)."""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch
from pytorch_lightning import Callback, LightningModule, Trainer

__all__ = ['ArchitectureLogger', 'RandomStateKeeper']

_logger = logging.getLogger('nni.proxyless')


SHOWN_IN_FULL = 200
"""The most probable architecture is printed whole at the first epoch when its text is at most this long."""

SHOWN_CHANGES = 6
"""At most this many changed labels are named on an epoch's line."""


class ArchitectureLogger(Callback):
    """Every epoch: log the architecture entropy and figures (progress bar), each probability (scalars).

    The epoch's line is short whatever the space: the figures, then the labels whose most probable value changed
    since the last epoch (``conv1 k3 -> k5``); the first epoch prints the whole most probable architecture when
    it is short, its number of labels otherwise. The whole architecture is logged at DEBUG level every epoch.

    The module it watches must have an ``arch`` (:class:`~nni_proxyless.arch.ArchParameters`) and a
    ``search_figures()`` method, as :class:`~nni_proxyless.training.ProxylessModule` does.

    Lightning's progress bar shows the logged values in its own ``on_train_epoch_end``; a callback that logs in
    that hook after the bar has run would show there one epoch late. So this callback puts itself before the
    progress bar in the trainer's callbacks: at the end of each epoch the bar shows that epoch's figures.
    """

    def __init__(self) -> None:
        self.previous: dict[str, Any] | None = None  # the most probable architecture at the last epoch's end

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        bar = trainer.progress_bar_callback
        callbacks = [c for c in trainer.callbacks if c is not self]
        if bar in callbacks:
            position = callbacks.index(bar)
            # a new list: Lightning is iterating over the current one while it calls this hook
            trainer.callbacks = callbacks[:position] + [self] + callbacks[position:]

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        figures = pl_module.search_figures()
        pl_module.log_dict(figures, prog_bar=True)
        arch = pl_module.arch
        pl_module.log_dict({f'prob/{label}/{value}': float(p)
                            for label, choice in arch.choices.items()
                            for value, p in zip(choice.values, arch.probs(label))})
        if trainer.is_global_zero:
            shown = ', '.join(f'{name} {value:.4g}' for name, value in figures.items())
            argmax = arch.argmax()
            _logger.info('Epoch %d: %s; %s', trainer.current_epoch, shown, self._changes(argmax))
            _logger.debug('Epoch %d: most probable architecture %s', trainer.current_epoch, argmax)
            self.previous = argmax

    def _changes(self, argmax: dict[str, Any]) -> str:
        """What the epoch's line says of the most probable architecture."""
        if self.previous is None:
            text = str(argmax)
            return (f'most probable architecture {text}' if len(text) <= SHOWN_IN_FULL else
                    f'most probable architecture of {len(argmax)} labels (at DEBUG level)')
        changed = [f'{label} {self.previous.get(label)} -> {value}' for label, value in argmax.items()
                   if self.previous.get(label) != value]
        if not changed:
            return 'most probable architecture unchanged'
        more = f' and {len(changed) - SHOWN_CHANGES} more' if len(changed) > SHOWN_CHANGES else ''
        return f'most probable changed: {", ".join(changed[:SHOWN_CHANGES])}{more}'

    def state_dict(self) -> dict[str, Any]:
        return {'previous': self.previous}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.previous = state_dict.get('previous')


class RandomStateKeeper(Callback):
    """Saves the global random states (torch, Python, NumPy) in checkpoints and restores them on resume.

    Data shuffling and random candidates (dropout, noise) draw from these states; restoring them makes a
    resumed search continue exactly as the uninterrupted one would have (path sampling has its own seeds).
    On a GPU, dropout draws from the CUDA generator of the process's device: its state is kept too (when CUDA
    is in use) and restored into the device of the resumed process (all GPUs' states would make every DDP
    process initialise every GPU). Stored as tensors and plain lists, so checkpoints load with
    ``weights_only=True``.
    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, position, has_gauss, cached = np.random.get_state()
        state = {'torch': torch.get_rng_state(), 'python': list(random.getstate()[1]),
                 'python_version': random.getstate()[0], 'python_gauss': random.getstate()[2],
                 'numpy': [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position),
                           int(has_gauss), float(cached)]}
        if torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict['torch'])
        if state_dict.get('cuda') is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state_dict['cuda'])
        random.setstate((state_dict['python_version'], tuple(state_dict['python']), state_dict['python_gauss']))
        name, keys, position, has_gauss, cached = state_dict['numpy']
        np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
