"""The latency arguments of :class:`~nni_proxyless.Proxyless`, checked before any long work starts."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from .build import build_latency_table, hardware_kind
from .predictors import create_predictor
from .loss import OFFICIAL_PARAMS, LatencyLoss, LatencyObjective

__all__ = ['LatencyConfig']

_logger = logging.getLogger('nni.proxyless')


@dataclass(frozen=True)
class LatencyConfig:
    """Where latency comes from and how it enters the architecture loss (see ``Proxyless``'s arguments)."""

    hardware: Any
    loss: LatencyLoss
    dummy_input: Sequence[int] | torch.Tensor
    target: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def checked(cls, *, hardware: Any, loss_type: str | None, loss_params: dict | None, ref_latency: float,
                dummy_input: Sequence[int] | torch.Tensor, target: float | None,
                options: dict[str, Any] | None) -> 'LatencyConfig | None':
        """Validate every latency argument; ``None`` when there is no ``applied_hardware``.

        Raises:
            ValueError: naming the bad argument, its value and what is allowed.
        """
        params = loss_params if loss_params is not None else dict(OFFICIAL_PARAMS.get(loss_type, {}))
        loss = LatencyLoss(loss_type, params, ref_latency)
        _check_dummy_input(dummy_input)
        if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                                   or not target > 0 or not math.isfinite(target)):
            raise ValueError(f'latency_target must be a positive number of milliseconds or None, got {target!r}.')
        if options is not None and not isinstance(options, dict):
            raise ValueError(f'predictor_options must be a dict, got {options!r}.')
        if hardware is None:
            if target is not None:
                raise ValueError('latency_target needs applied_hardware (where latency comes from).')
            return None
        _check_hardware(hardware)
        if hardware_kind(hardware) == 'name':  # build it now: a missing predictor or bad option fails here
            hardware, options = create_predictor(hardware, **(options or {})), {}
        if loss_params is None and loss_type is not None:
            _logger.info('grad_reg_loss_params not given: using the official ProxylessNAS values %s for %s.',
                         params, loss_type)
        return cls(hardware, loss, dummy_input, target, dict(options or {}))

    def build(self, supernet: nn.Module) -> LatencyObjective:
        """The objective the architecture step adds, with the supernet's latency table."""
        table = build_latency_table(supernet, self.hardware, self.dummy_input, **self.options)
        low, _ = table.bounds()
        if self.target is not None and self.target < low:
            _logger.warning('latency_target %.3f %s is below the fastest architecture of the space (%.3f %s); '
                            'it cannot be met.', self.target, table.unit, low, table.unit)
        return LatencyObjective(table, self.loss)


def _check_dummy_input(dummy_input: Any) -> None:
    if isinstance(dummy_input, torch.Tensor):
        return
    if (not isinstance(dummy_input, (tuple, list)) or not dummy_input
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dummy_input)):
        raise ValueError(f'dummy_input must be an input shape of positive integers such as (1, 3, 224, 224), '
                         f'or a tensor; got {dummy_input!r}.')


def _check_hardware(hardware: Any) -> None:
    if hardware_kind(hardware) == 'file' and not os.path.isfile(hardware):
        raise ValueError(f'applied_hardware={str(hardware)!r}: no such latency table file.')
