"""Mixed precision in the architecture step: the trainer's gradient scaler, and the precisions that cannot work.

Under ``precision='16-mixed'`` Lightning scales the weight step's loss with a ``torch.amp.GradScaler``, unscales
the gradients before the optimiser steps and skips the steps whose gradients overflowed. The architecture step
takes its gradients with ``torch.autograd.grad`` and steps its own Adam outside Lightning's loop, so it does the
same explicitly, with the same scaler: the loss is multiplied by the scale before the backward, so that the small
``dL/dy`` behind the gate gradients do not underflow in float16; the scaler divides the logits' (float32)
gradients by the scale, skips the step if any of them is not finite, and updates the scale. ``'bf16-mixed'`` has
float32's exponent range and Lightning gives it no scaler. Either way the logits, their gradients, Adam and the
rescale stay in float32 (mixed precision leaves parameters alone).

``'16-true'`` and ``'bf16-true'`` turn every parameter, the logits included, into half precision, where a step of
``arc_learning_rate`` (1e-3) is below the rounding of a logit near 1 (2**-7 in bfloat16): they are refused.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ['check_precision', 'gradient_scaler', 'scaled_gradients', 'scaled_step']

_HALF_PARAMETERS = ('16-true', 'bf16-true', '16', 'bf16')


def check_precision(trainer: Any) -> None:
    """Refuse a trainer precision that would store the architecture logits in half precision.

    Raises:
        ValueError: ``precision`` is ``'16-true'`` or ``'bf16-true'`` (the message says what to use instead).
    """
    precision = str(getattr(trainer, 'precision', '32-true'))
    if precision in _HALF_PARAMETERS:
        raise ValueError(f"Trainer(precision={precision!r}) stores every parameter in half precision, the "
                         'architecture logits included, where Adam steps of arc_learning_rate vanish in rounding. '
                         "Use precision='16-mixed' or 'bf16-mixed' (half-precision compute, float32 parameters).")


def gradient_scaler(trainer: Any) -> torch.amp.GradScaler | None:
    """The gradient scaler of the trainer's precision plugin (``'16-mixed'``), or ``None``."""
    scaler = getattr(getattr(trainer, 'precision_plugin', None), 'scaler', None)
    return scaler if isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled() else None


def scaled_gradients(loss: torch.Tensor, params: Sequence[torch.Tensor],
                     scaler: torch.amp.GradScaler | None) -> tuple[torch.Tensor | None, ...]:
    """Gradients of ``loss`` for ``params`` (``None`` where unused), of the scaled loss when there is a scaler."""
    return torch.autograd.grad(loss if scaler is None else scaler.scale(loss), list(params), allow_unused=True)


def scaled_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """Step ``optimizer`` on gradients from :func:`scaled_gradients`: unscaled first, skipped if not finite."""
    if scaler is None:
        optimizer.step()
        return
    scaler.step(optimizer)
    scaler.update()
