"""Lightning callbacks that show a search while it runs (logs, progress bar, TensorBoard scalars)."""

from __future__ import annotations

import logging

from pytorch_lightning import Callback, LightningModule, Trainer

__all__ = ['ArchitectureLogger']

_logger = logging.getLogger('nni.proxyless')


class ArchitectureLogger(Callback):
    """Every epoch: log the architecture entropy and figures (progress bar), each probability (scalars).

    The module it watches must have an ``arch`` (:class:`~nni_proxyless.arch.ArchParameters`) and a
    ``search_figures()`` method, as :class:`~nni_proxyless.training.ProxylessModule` does.
    """

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        figures = pl_module.search_figures()
        pl_module.log_dict(figures, prog_bar=True)
        arch = pl_module.arch
        pl_module.log_dict({f'prob/{label}/{value}': float(p)
                            for label, choice in arch.choices.items()
                            for value, p in zip(choice.values, arch.probs(label))})
        if trainer.is_global_zero:
            shown = ', '.join(f'{name} {value:.4g}' for name, value in figures.items())
            _logger.info('Epoch %d: %s; most probable architecture %s', trainer.current_epoch, shown, arch.argmax())
