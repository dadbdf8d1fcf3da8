"""FLOPs as a latency proxy: cheap, deterministic, and blind to memory traffic and hardware."""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from .protocol import ModuleCall

__all__ = ['FlopsPredictor']

_logger = logging.getLogger('nni.proxyless')


class FlopsPredictor:
    """Counts floating-point operations (``torch.utils.flop_counter``) in millions: a proxy, not a latency.

    Matrix multiplications and convolutions are counted; element-wise operations are free. ``ref_latency`` and
    ``latency_target`` are then in MFLOPs.
    """

    unit = 'MFLOPs'
    description = 'FLOPs (a proxy for latency)'

    def __init__(self) -> None:
        _logger.info('Latency is approximated by FLOPs (a proxy: it ignores memory traffic and the hardware); '
                     'ref_latency, latency_target and deploy_targets are in MFLOPs.')

    def predict(self, calls: Sequence[ModuleCall]) -> list[float]:
        """Millions of FLOPs of each call, in eval mode."""
        return [self._mflops(call) for call in calls]

    @staticmethod
    def _mflops(call: ModuleCall) -> float:
        was_training = call.module.training
        call.module.eval()
        try:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                call.module(*call.args, **call.kwargs)
        finally:
            call.module.train(was_training)
        return counter.get_total_flops() / 1e6
