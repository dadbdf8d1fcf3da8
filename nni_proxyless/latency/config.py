"""The latency arguments of :class:`~nni_proxyless.Proxyless`, checked before any long work starts."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from .. import _checks
from .build import build_latency_table, hardware_kind
from .predictors import create_predictor
from .loss import OFFICIAL_PARAMS, LatencyLoss, LatencyObjective
from .table import LatencyTable, TableError

__all__ = ['LatencyConfig', 'check_target_reachable']

_logger = logging.getLogger('nni.proxyless')


@dataclass(frozen=True)
class LatencyConfig:
    """Where latency comes from and how it enters the architecture loss (see ``Proxyless``'s arguments)."""

    hardware: Any
    loss: LatencyLoss
    dummy_input: Sequence[int] | torch.Tensor
    target: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    deploy_targets: tuple[float, ...] = ()  # ascending

    @property
    def export_target(self) -> float | None:
        """The latency limit of exports (and of the architecture validated) when a call gives none:
        ``latency_target``, else the largest of ``deploy_targets`` (nothing above it is trained), else ``None``."""
        return self.target if self.target is not None else max(self.deploy_targets, default=None)

    @classmethod
    def checked(cls, *, hardware: Any, loss_type: str | None, loss_params: dict | None, ref_latency: float,
                dummy_input: Sequence[int] | torch.Tensor, target: float | None,
                options: dict[str, Any] | None, deploy_targets: Sequence[float] | None = None
                ) -> 'LatencyConfig | None':
        """Validate every latency argument; ``None`` when there is no ``applied_hardware``.

        Raises:
            ValueError: naming the bad argument, its value and what is allowed.
        """
        _checks.mapping('predictor_options', options, optional=True)
        source = None if hardware is None else _resolved(hardware, options or {})
        if hardware is not None and hardware_kind(hardware) == 'name':
            hardware, options = source, {}  # built now: a missing predictor or bad option fails here
        unit = _UNIT_NAMES.get(source.unit, source.unit) if source is not None else 'milliseconds'
        params = loss_params if loss_params is not None else dict(OFFICIAL_PARAMS.get(loss_type, {}))
        loss = LatencyLoss(loss_type, params, ref_latency, unit)
        if not isinstance(dummy_input, torch.Tensor):
            dummy_input = _checks.shape('dummy_input', dummy_input)
        target = _checks.number('latency_target', target, positive=True, optional=True, unit=unit)
        deploy = _deploy_targets(deploy_targets, unit)
        if hardware is None:
            for name, given in (('latency_target', target), ('deploy_targets', deploy)):
                if given:
                    raise ValueError(f'{name} needs applied_hardware (where latency comes from).')
            return None
        if loss_params is None and loss_type is not None:
            _logger.info('grad_reg_loss_params not given: using the official ProxylessNAS values %s for %s.',
                         params, loss_type)
        return cls(hardware, loss, dummy_input, target, dict(options or {}), deploy)

    def build(self, supernet: nn.Module) -> LatencyObjective:
        """The objective the architecture step adds, with the supernet's latency table."""
        table = build_latency_table(supernet, self.hardware, self.dummy_input, **self.options)
        named = [('latency_target', self.target)] if self.target is not None else []
        for name, target in named + [('deploy_targets', target) for target in self.deploy_targets]:
            check_target_reachable(table, target, name)
        return LatencyObjective(table, self.loss)


def check_target_reachable(table: LatencyTable, target: float, name: str = 'latency_target') -> None:
    """Refuse a ``latency_target`` (a budget of ``name``) that no architecture of the table's space can meet.

    Raises:
        ValueError: naming the target, the unit, the fastest architecture's predicted latency and the fix.
    """
    fastest, _ = table.bounds()
    if fastest > target:
        single = name == 'latency_target'
        what, it = (f'{name}={target:g}', name) if single else (f'The {name} budget {target:g}', 'that budget')
        fix = 'or to None for no limit' if single else 'or leave it out'
        raise ValueError(f'{what} {table.unit} cannot be met: the fastest architecture of the space is predicted '
                         f'at {fastest:.4g} {table.unit} (or more) on {table.hardware}. Set {it} to at least '
                         f'{fastest:.4g} {table.unit}, {fix}.')


def _deploy_targets(targets: Sequence[float] | None, unit: str) -> tuple[float, ...]:
    """``deploy_targets`` checked (``None`` or a non-empty sequence of distinct positive numbers), ascending."""
    if targets is None:
        return ()
    if isinstance(targets, (str, bytes)) or not isinstance(targets, Sequence) or not targets:
        _checks.fail('deploy_targets', f'a non-empty list of latency budgets in {unit} (or None)', targets)
    checked = tuple(_checks.number(f'deploy_targets[{i}]', target, positive=True, unit=unit)
                    for i, target in enumerate(targets))
    if len(set(checked)) < len(checked):
        _checks.fail('deploy_targets', 'distinct budgets', targets)
    return tuple(sorted(checked))


_UNIT_NAMES = {'ms': 'milliseconds'}
"""Units as messages name them (a unit not listed is named as it is, e.g. ``MFLOPs``)."""


def _resolved(hardware: Any, options: dict[str, Any]) -> Any:
    """The predictor or table behind ``applied_hardware`` (a saved table is read and checked now, so that a
    missing or corrupt file fails in the constructor rather than when the search starts)."""
    kind = hardware_kind(hardware)
    if kind == 'file':
        if not os.path.isfile(hardware):
            _checks.fail('applied_hardware', 'an existing latency table file (.json)', str(hardware))
        try:
            return LatencyTable.load(hardware)
        except TableError as error:
            raise TableError(f'applied_hardware={str(hardware)!r}: {error}. Build the table again '
                             '(build_latency_table(...).save(path)), or pass a predictor name such as '
                             "'cpu' or 'flops'.") from None
    return create_predictor(hardware, **options) if kind == 'name' else hardware
