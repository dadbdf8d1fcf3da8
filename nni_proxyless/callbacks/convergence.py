"""How far the architecture distribution may move within a search's budget, and whether it did.

The architecture optimiser is Adam with beta1 = 0: each step moves a logit by about ``arc_learning_rate``
whatever the gradient's size or quality. Over ``S`` architecture steps, gradients that agree move a logit by up
to ``rate * S``; gradients of pure noise (equally good candidates, too little trained weights, one noisy
batch) move it by about ``rate * sqrt(S)``, a random walk. The official 1e-3 suits the paper's ImageNet budget
(tens of thousands of steps); in a search of a few dozen steps it leaves the distribution uniform.

``arc_learning_rate='auto'`` (the default) bounds what noise can do instead:
``max(1e-3, NOISE_DRIFT / sqrt(S))``, with ``S`` counted from the trainer's own plan
(``trainer.estimated_stepping_batches``, ``warmup_epochs``, ``arch_update_every``). Noise then moves a logit by
about ``NOISE_DRIFT`` whatever the budget, and only a consistent gradient further, up to
``NOISE_DRIFT * sqrt(S)``: the distribution moves as far as the evidence supports. :class:`ConvergenceCheck` warns
at the start of a search too short for any candidate to be told apart and at the end of one whose distribution
barely moved, and says which argument to change. The measurements behind
``NOISE_DRIFT`` are in docs/arguments.md.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer

__all__ = ['MIN_UPDATES', 'NOISE_DRIFT', 'OFFICIAL_ARC_LEARNING_RATE', 'ConvergenceCheck', 'arc_learning_rate',
           'architecture_steps', 'auto_arc_learning_rate', 'check_evidence', 'check_warmup', 'updates_per_candidate']

_logger = logging.getLogger('nni.proxyless')

OFFICIAL_ARC_LEARNING_RATE = 1e-3
NOISE_DRIFT = 0.25             # logit units that pure-noise gradients move a logit by over a search (``'auto'``)
MIN_UPDATES = 5                # updates per candidate below which a search is warned about at its start
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
    """``max(1e-3, NOISE_DRIFT / sqrt(steps))``: Adam's steps have about the learning rate's size whatever the
    gradient's quality, so ``steps`` steps of pure noise move a logit by about ``rate * sqrt(steps)``; this rate
    keeps that at ``NOISE_DRIFT`` whatever the budget, while a consistent gradient moves it by up to
    ``NOISE_DRIFT * sqrt(steps)``. Never below the official value (also what a search without a known end gets)."""
    if steps <= 0 or math.isinf(steps):
        return OFFICIAL_ARC_LEARNING_RATE
    return max(OFFICIAL_ARC_LEARNING_RATE, NOISE_DRIFT / math.sqrt(steps))


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


def updates_per_candidate(choice: Any, steps: float, *, binary_mode: str, reinforce_samples: int | None) -> float:
    """How many of ``steps`` architecture steps give one candidate of ``choice`` a gradient, expected under the
    uniform distribution the search starts from: ``two`` mode gates 2 of its ``K`` candidates per step,
    ``full_v2`` all of them, an ``InputChoice`` the ``n_chosen`` it draws, REINFORCE the ``samples``
    architectures it draws (one candidate each)."""
    count = len(choice.values)
    if reinforce_samples is not None:
        return steps * reinforce_samples / count
    if choice.n_chosen > 1:
        return steps * choice.n_chosen / count
    return steps * (1.0 if binary_mode == 'full_v2' else min(2, count) / count)


def check_evidence(trainer: Trainer, settings: Any, choices: dict[str, Any], *,
                   reinforce_samples: int | None = None) -> None:
    """Warn at fit start when the plan leaves some candidate fewer than ``MIN_UPDATES`` updates.

    Five is the fewest comparisons in which a consistent gradient can be told from noise: five agreeing signs
    happen by chance with probability ``1 / 32 < 0.05`` (a sign test); four agreeing ones, ``1 / 16``. With fewer,
    the distribution ends near where it starts (the default learning rate bounds what noise can do, see
    :func:`auto_arc_learning_rate`) and the export rests on a handful of batches. The warning gives the count and
    the epochs that would give enough.
    """
    steps = architecture_steps(trainer, warmup_epochs=settings.warmup_epochs,
                               arch_update_every=settings.arch_update_every)
    if not trainer.is_global_zero or math.isinf(steps) or steps <= 0 and settings.warmup_epochs:
        return  # no known end, or check_warmup's case
    counted = {label: updates_per_candidate(choice, steps, binary_mode=settings.binary_mode,
                                            reinforce_samples=reinforce_samples)
               for label, choice in choices.items() if len(choice.values) > 1}
    if not counted:
        return
    label = min(counted, key=counted.get)
    if counted[label] >= MIN_UPDATES:
        return
    per_step = updates_per_candidate(choices[label], 1, binary_mode=settings.binary_mode,
                                     reinforce_samples=reinforce_samples)
    needed_steps = math.ceil(MIN_UPDATES / per_step)
    batches = float(trainer.num_training_batches)
    epochs = ('more epochs' if math.isinf(batches) or not batches else
              f'max_epochs={settings.warmup_epochs + math.ceil(needed_steps * settings.arch_update_every / batches)}')
    _logger.warning('Too few architecture steps to tell the candidates apart: the trainer plans %d, in which each of '
                    "the %d candidates of label %r gets a gradient about %.1f times, fewer than %d (five agreeing "
                    'comparisons are the fewest that noise rarely gives). The export will be close to a uniform '
                    'pick. Plan at least %d architecture steps: %s%s%s.', int(steps), len(choices[label].values),
                    label, counted[label], MIN_UPDATES, needed_steps, epochs,
                    '' if settings.arch_update_every == 1 else ', or arch_update_every=1',
                    '' if settings.binary_mode == 'full_v2' or reinforce_samples else
                    ", or binary_mode='full_v2' (which gates every candidate at every step)")


class ConvergenceCheck(Callback):
    """At the start of a search, warns when its plan is too short to move the distribution
    (:func:`check_warmup`, :func:`check_evidence`); at its end, warns when the distribution barely left the
    uniform one.

    "Barely" means the entropy (nats, summed over labels) is at least 95% of the uniform distribution's. The
    warning gives the figures and which argument to change. The module must be a
    :class:`~nni_proxyless.training.ProxylessModule` (it reads ``arch``, ``settings`` and the architecture
    optimiser's learning rate).
    """

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        check_warmup(trainer, pl_module.settings)
        check_evidence(trainer, pl_module.settings, pl_module.arch.choices,
                       reinforce_samples=None if pl_module.reinforce is None else pl_module.reinforce.samples)

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
    return ('With the default learning rate this means the architecture gradients did not agree on a direction: it '
            f'lets noise move a logit by about {NOISE_DRIFT:g} over the whole search and only a consistent gradient '
            'further. The candidates may be nearly equivalent, or the weights too little trained to tell them apart. '
            'Train longer (max_epochs), start the architecture later (warmup_epochs), or set arc_learning_rate '
            'yourself to force a choice.')


def _count(steps: float) -> str:
    return 'an unknown number of' if math.isinf(steps) else str(int(steps))
