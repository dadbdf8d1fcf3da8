"""The architecture a search favours, shown every epoch: the log line, the progress bar, TensorBoard scalars."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer

from .._io import run_folder

__all__ = ['SHOWN_CHANGES', 'SHOWN_IN_FULL', 'ArchitectureLogger']

_logger = logging.getLogger('nni.proxyless')


SHOWN_IN_FULL = 200
"""The most probable architecture is printed whole at the first epoch when its text is at most this long."""

SHOWN_CHANGES = 6
"""At most this many changed labels are named on an epoch's line."""


class ArchitectureLogger(Callback):
    """Every epoch: log the architecture entropy and figures (progress bar), each probability (scalars).

    The epoch's line is short whatever the space: the figures, then the labels whose most probable value changed
    since the last epoch (``conv1 k3 -> k5``); the first epoch prints the whole most probable architecture when
    it is short, its number of labels otherwise. The whole architecture is logged at DEBUG level every epoch,
    and appended to ``architectures.jsonl`` in ``folder`` (one JSON line per epoch: ``epoch``, ``architecture``,
    ``figures``; written as each epoch ends, so a crash keeps the epochs before it).

    Args:
        folder: where ``architectures.jsonl`` goes (``None``: the trainer logger's folder, e.g. TensorBoard's
            ``lightning_logs/version_N``; no file when the trainer has no logger).

    The module it watches must have an ``arch`` (:class:`~nni_proxyless.arch.ArchParameters`) and a
    ``search_figures()`` method, as :class:`~nni_proxyless.training.ProxylessModule` does.

    Lightning's progress bar shows the logged values in its own ``on_train_epoch_end``; a callback that logs in
    that hook after the bar has run would show there one epoch late. So this callback puts itself before the
    progress bar in the trainer's callbacks: at the end of each epoch the bar shows that epoch's figures.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self.previous: dict[str, Any] | None = None  # the most probable architecture at the last epoch's end
        self.written_to: Path | None = None  # the architecture file, once written

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
        folder = run_folder(self.folder, trainer)  # every rank: reading the logger's folder is a collective call
        if trainer.is_global_zero:
            shown = ', '.join(f'{name} {value:.4g}' for name, value in figures.items())
            argmax = arch.argmax()
            _logger.info('Epoch %d: %s; %s', trainer.current_epoch, shown, self._changes(argmax))
            _logger.debug('Epoch %d: most probable architecture %s', trainer.current_epoch, argmax)
            if folder is not None:
                self._append(folder, {'epoch': trainer.current_epoch, 'architecture': argmax, 'figures': figures})
            self.previous = argmax

    def _append(self, folder: Path, line: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / 'architectures.jsonl'
        with path.open('a') as file:  # one line per epoch, flushed as it ends
            file.write(json.dumps(line, default=str) + '\n')
        self.written_to = path

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
