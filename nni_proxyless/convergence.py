"""How far the architecture distribution can move within a search's budget, and whether it did.

The architecture optimiser is Adam with beta1 = 0: each step moves a logit by about ``arc_learning_rate``
whatever the gradient's size (less when successive gradients disagree). A search of ``S`` architecture steps
can thus move a logit by at most ``arc_learning_rate * S``. The official value, 1e-3, suits the paper's
ImageNet budget (tens of thousands of architecture steps); a search of a few epochs on a small data set makes
a few dozen, and its distribution hardly leaves the uniform one (a digits space: entropy 4.682 -> 4.673 nats in
30 epochs), so the exported ranking rests on noise-sized differences.

``arc_learning_rate='auto'`` (the default) gives the logits the same room whatever the budget:
``max(1e-3, LOGIT_TRAVEL / S)``, with ``S`` counted from the trainer's own plan
(``trainer.estimated_stepping_batches``, ``warmup_epochs``, ``arch_update_every``); long searches keep the
official 1e-3. :class:`ConvergenceCheck` warns at the end of a search whose distribution barely moved, and says
which argument to change. The measurements behind ``LOGIT_TRAVEL`` are in docs/arguments.md.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer

__all__ = ['LOGIT_TRAVEL', 'OFFICIAL_ARC_LEARNING_RATE', 'ConvergenceCheck', 'arc_learning_rate',
           'architecture_steps', 'auto_arc_learning_rate']

_logger = logging.getLogger('nni.proxyless')

OFFICIAL_ARC_LEARNING_RATE = 1e-3
LOGIT_TRAVEL = 10.0            # logit units a search may move each logit by, at most (``'auto'``)
BARELY_MOVED = 0.95            # entropy over the uniform distribution's at or above which the search barely moved


def architecture_steps(trainer: Trainer, *, warmup_epochs: int, arch_update_every: int) -> float:
    """How many architecture steps the trainer's plan holds (``inf`` when it has no end).

    Weight steps are ``trainer.estimated_stepping_batches`` (``max_epochs`` or ``max_steps``, with
    ``limit_train_batches``, per process); those of the ``warmup_epochs`` are left out. 0 when the warm-up's
    length is unknown (an iterable data set without ``len``).
    """
    weight_steps = float(trainer.estimated_stepping_batches)
    if math.isinf(weight_steps):
        return weight_steps
    warmup_steps = warmup_epochs * float(trainer.num_training_batches) if warmup_epochs else 0.0
    if math.isinf(warmup_steps):  # batches per epoch unknown (an iterable data set)
        return 0.0
    return max(0.0, weight_steps - warmup_steps) // arch_update_every


def auto_arc_learning_rate(steps: float) -> float:
    """``max(1e-3, LOGIT_TRAVEL / steps)``: the learning rate that lets ``steps`` Adam steps move a logit by
    ``LOGIT_TRAVEL``, never below the official value (also what a search without a known end gets)."""
    if steps <= 0 or math.isinf(steps):
        return OFFICIAL_ARC_LEARNING_RATE
    return max(OFFICIAL_ARC_LEARNING_RATE, LOGIT_TRAVEL / steps)


def arc_learning_rate(settings: Any, trainer: Trainer) -> float:
    """The architecture learning rate of a search: ``settings.arc_learning_rate``, or for ``'auto'`` the one
    :func:`auto_arc_learning_rate` gives for the trainer's plan (logged)."""
    if settings.arc_learning_rate != 'auto':
        return float(settings.arc_learning_rate)
    steps = architecture_steps(trainer, warmup_epochs=settings.warmup_epochs,
                               arch_update_every=settings.arch_update_every)
    rate = auto_arc_learning_rate(steps)
    if trainer.is_global_zero:
        _logger.info("arc_learning_rate='auto': %.3g for %s architecture steps (arc_learning_rate=1e-3 gives the "
                     'official value).', rate, _count(steps))
    return rate


def check_warmup(trainer: Trainer, settings: Any) -> None:
    """Warn, loudly, when ``warmup_epochs`` leaves the trainer's plan no architecture step: the architecture then
    never moves and the export is a uniform pick. Not refused: a warm-up beyond the run is also how to time or
    train the weights alone."""
    if not settings.warmup_epochs or not trainer.is_global_zero:
        return
    steps = architecture_steps(trainer, warmup_epochs=settings.warmup_epochs,
                               arch_update_every=settings.arch_update_every)
    if steps <= 0:
        _logger.warning('warmup_epochs=%d leaves no architecture step: the trainer runs max_epochs=%s (max_steps=%s), '
                        'all of them warm-up, so the architecture will not move and the export will be a uniform '
                        'pick. Make warmup_epochs smaller than max_epochs, or train longer.',
                        settings.warmup_epochs, trainer.max_epochs, trainer.max_steps)


class ConvergenceCheck(Callback):
    """At the end of a search, warns when the architecture distribution barely left the uniform one.

    "Barely" means the entropy (nats, summed over labels) is at least 95% of the uniform distribution's. The
    warning gives the figures and which argument to change. The module must be a
    :class:`~nni_proxyless.training.ProxylessModule` (it reads ``arch``, ``settings`` and the architecture
    optimiser's learning rate).
    """

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        arch, settings = pl_module.arch, pl_module.settings
        uniform = sum(math.log(len(choice.values)) for choice in arch.choices.values())
        entropy = arch.entropy()
        steps = architecture_steps(trainer, warmup_epochs=settings.warmup_epochs,
                                   arch_update_every=settings.arch_update_every)
        if not trainer.is_global_zero or steps <= 0 or uniform == 0 or entropy < BARELY_MOVED * uniform:
            return
        rate = pl_module.architecture_optimizers().optimizer.param_groups[0]['lr']
        _logger.warning('The architecture distribution barely moved: its entropy is %.1f%% of the uniform '
                        "distribution's (%.4g of %.4g nats) after %s architecture steps at arc_learning_rate=%.3g. "
                        'The exported ranking rests on small differences. %s', 100 * entropy / uniform, entropy,
                        uniform, _count(steps), rate, _fix(settings.arc_learning_rate == 'auto', steps))


def _fix(auto: bool, steps: float) -> str:
    if not auto:
        return (f"Use arc_learning_rate='auto' (the default: {auto_arc_learning_rate(steps):.3g} for this budget) "
                'or a larger arc_learning_rate, arch_update_every=1, or more epochs.')
    return ('With the automatic learning rate this means the architecture gradients did not agree on a direction: '
            'the candidates may be nearly equivalent, or the weights too little trained to tell them apart. Train '
            'longer (max_epochs), start the architecture later (warmup_epochs), or raise arc_learning_rate above '
            'the automatic value.')


def _count(steps: float) -> str:
    return 'an unknown number of' if math.isinf(steps) else str(int(steps))
