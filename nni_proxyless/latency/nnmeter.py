"""nn-Meter's edge-device predictors (see :class:`NnMeterPredictor`)."""

from __future__ import annotations

from typing import Sequence

from .predictors import ModuleCall

__all__ = ['NnMeterPredictor']


class NnMeterPredictor:
    """Latency on one of nn-Meter's four edge devices, predicted offline from nn-Meter's kernel predictors."""

    unit = 'ms'

    def __init__(self, device: str, *, predictor_dir: str | None = None, allow_download: bool = False):
        self.device = device
        self.description = f'nn-Meter {device}'
        raise NotImplementedError(
            f'nn-Meter prediction for {device!r} is not available in this release yet; use '
            "applied_hardware='cpu', 'flops', a latency table (.json) or a predictor object.")

    def predict(self, calls: Sequence[ModuleCall]) -> list[float]:
        raise NotImplementedError
