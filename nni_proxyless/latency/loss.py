"""The latency-aware architecture loss (docs/design.md, "Formulas and where they live").

With CE the architecture step's task loss and E the expected latency (differentiable in the logits):

* ``'mul#log'``:    loss = alpha * CE * (log(E) / log(ref_latency)) ** beta
* ``'add#linear'``: loss = CE + lambda * (E - ref_latency) / ref_latency
* ``None``:         loss = CE

A ``latency_target`` does not enter this loss: it constrains the export (only architectures predicted to
meet it are returned, see ``Proxyless.export_top_models``). A penalty above the target was tried (a Lagrange
multiplier, then a hinge) and dropped: in a search of realistic length the logits move by about the
learning rate per step, so any term strong enough to move them under the target made every choice's
cheapest candidate the most probable, and the constrained export then returned the cheapest architecture
instead of the best one within the target (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from .. import _checks
from ..arch import ArchParameters, Selection
from .table import LatencyTable

__all__ = ['LatencyLoss', 'LatencyObjective', 'OFFICIAL_PARAMS']


OFFICIAL_PARAMS = {'mul#log': {'alpha': 0.2, 'beta': 0.3}, 'add#linear': {'lambda': 0.1}}
_REQUIRED = {'mul#log': ('alpha', 'beta'), 'add#linear': ('lambda',), None: ()}


@dataclass(frozen=True)
class LatencyLoss:
    """One of the ProxylessNAS latency losses.

    Args:
        kind: ``'mul#log'``, ``'add#linear'`` or ``None``.
        params: ``{'alpha', 'beta'}`` for ``'mul#log'``, ``{'lambda'}`` for ``'add#linear'``.
        ref_latency: reference latency, in the table's unit, > 0 (> 1 for ``'mul#log'``).
        unit: that unit, as error messages name it (``'milliseconds'``, ``'MFLOPs'``).

    Raises:
        ValueError: unknown kind, a missing or non-numeric parameter, or a bad reference latency.
    """

    kind: str | None
    params: dict[str, float]
    ref_latency: float
    unit: str = field(default='milliseconds', compare=False)

    def __post_init__(self) -> None:
        _checks.one_of('grad_reg_loss_type', self.kind, tuple(_REQUIRED))
        params = _checks.mapping('grad_reg_loss_params', self.params, optional=True) or {}
        missing = [name for name in _REQUIRED[self.kind] if name not in params]
        if missing:
            raise ValueError(f'grad_reg_loss_type={self.kind!r} needs grad_reg_loss_params with '
                             f'{_listed(_REQUIRED[self.kind])}; missing {_listed(missing)} (got {self.params!r}). '
                             f'The official values are {OFFICIAL_PARAMS[self.kind]}.')
        numbers = {name: _checks.number(f'grad_reg_loss_params[{name!r}]', params[name])
                   for name in _REQUIRED[self.kind]}
        if self.kind == 'mul#log' and _checks.is_number(self.ref_latency) and self.ref_latency <= 1:
            raise ValueError(f"grad_reg_loss_type='mul#log' compares log(latency) with log(ref_latency), so it needs "
                             f'ref_latency > 1; with ref_latency={self.ref_latency} {self.unit} the ratio divides by '
                             "zero or inverts. Use 'add#linear', or express latency in a unit where it exceeds 1.")
        ref = _checks.number('ref_latency', self.ref_latency, positive=True, unit=self.unit)
        object.__setattr__(self, 'params', {**params, **numbers})  # plain floats, whatever numeric type was given
        object.__setattr__(self, 'ref_latency', ref)

    def __call__(self, task_loss: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        """The architecture loss from the task loss and the expected latency, in float32 at least (a task loss
        computed in half precision is promoted, so that the latency term is not rounded to it)."""
        dtype = torch.promote_types(task_loss.dtype, torch.float32)
        task_loss, expected = task_loss.to(dtype), expected.to(device=task_loss.device, dtype=dtype)
        if self.kind == 'mul#log':
            ratio = torch.log(expected) / math.log(self.ref_latency)
            return self.params['alpha'] * task_loss * ratio ** self.params['beta']
        if self.kind == 'add#linear':
            return task_loss + self.params['lambda'] * (expected - self.ref_latency) / self.ref_latency
        return task_loss


def _listed(names: Sequence[str]) -> str:
    return ', '.join(repr(name) for name in names)


class LatencyObjective(nn.Module):
    """What the training module needs of latency: the loss on sampled paths and the per-epoch figures.

    Args:
        table: the latency table of the search space.
        loss: the latency loss.
    """

    def __init__(self, table: LatencyTable, loss: LatencyLoss):
        super().__init__()
        self.table, self.loss = table, loss
        low, _ = table.bounds()
        if loss.kind == 'mul#log' and low <= 1:
            raise ValueError(f"grad_reg_loss_type='mul#log' needs every architecture's latency above 1 "
                             f'{table.unit} (log ratio), but the table allows {low:.3f} {table.unit}. Use '
                             "'add#linear'.")

    def forward(self, task_loss: torch.Tensor, selections: dict[str, Selection], arch: ArchParameters
                ) -> torch.Tensor:
        """Architecture loss for one step: ``w`` is the pair's softmax (``two``) or ``p`` (``full_v2``)."""
        expected = self.table.expected({label: s.weights() for label, s in selections.items()})
        return self.loss(task_loss, expected)

    def predict(self, sample: dict[str, Any]) -> float:
        """The latency of one architecture, priced by the current table (the checkpoint's after a resume)."""
        return self.table.predict(sample)

    def expected(self, arch: ArchParameters) -> float:
        """The expected latency under the current probabilities ``p``."""
        with torch.no_grad():
            return float(self.table.expected({label: arch.probs(label) for label in arch.labels()}))

    def figures(self, arch: ArchParameters) -> dict[str, Any]:
        """Per-epoch figures: expected latency under ``p``, the most probable architecture's latency."""
        unit = self.table.unit
        return {f'expected_latency_{unit}': self.expected(arch),
                f'argmax_latency_{unit}': self.table.predict(arch.argmax())}
