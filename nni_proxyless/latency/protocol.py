"""The latency predictor protocol: what ``applied_hardware`` can be besides a name or a table.

A predictor prices module calls::

    class MyPredictor:
        unit = 'ms'                      # the unit of what predict() returns
        description = 'my board'         # shown in logs and stored in tables

        def predict(self, calls: Sequence[ModuleCall]) -> list[float]:
            # one cost per call: the time of ``call.module(*call.args, **call.kwargs)`` in eval mode
            ...

Calls come in one batch per table, so a predictor can group them (nn-Meter predicts each kernel type at once).
A predictor that times real runs can also set ``calibrate = True``: the table is then fitted to the whole
network's price on a few architectures, since a module timed alone runs faster than inside the network
(:func:`~nni_proxyless.latency.build_latency_table`, step 4). Such a predictor may also have a method
``for_whole_networks()`` that returns the predictor to price those networks with (the measured predictors time
them with more repeats).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from ..ops import MixedOp

__all__ = ['ModuleCall', 'LatencyPredictor']


@dataclass(frozen=True)
class ModuleCall:
    """One module with the inputs it receives in the network (recorded from a forward of the dummy input)."""

    module: nn.Module
    args: tuple
    kwargs: dict

    def signature(self) -> str:
        """What determines the call's cost: the module's type, hyper-parameters, parameter and input shapes."""
        params = ','.join(f'{tuple(p.shape)}' for p in self.module.parameters())
        routed = ';'.join(m.routed() for m in self.module.modules() if isinstance(m, MixedOp))
        return '|'.join([type(self.module).__qualname__, repr(self.module), params, routed, _shapes(self.args),
                         _shapes(self.kwargs)])


@runtime_checkable
class LatencyPredictor(Protocol):
    """What ``applied_hardware`` can be besides a name or a table (see the module docstring)."""

    unit: str
    description: str

    def predict(self, calls: Sequence[ModuleCall]) -> list[float]:
        """One cost per call, in :attr:`unit`."""


def _shapes(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f'{tuple(value.shape)}:{value.dtype}'
    if isinstance(value, (list, tuple)):
        return '(' + ','.join(_shapes(v) for v in value) + ')'
    if isinstance(value, dict):
        return '{' + ','.join(f'{k}={_shapes(v)}' for k, v in sorted(value.items())) + '}'
    return repr(value)
