"""Latency predictors behind one front door: ``create_predictor(name, **options)``.

A predictor prices module calls. Anything with this protocol can be passed as ``applied_hardware``::

    class MyPredictor:
        unit = 'ms'                      # the unit of what predict() returns
        description = 'my board'         # shown in logs and stored in tables

        def predict(self, calls: Sequence[ModuleCall]) -> list[float]:
            # one cost per call: the time of ``call.module(*call.args, **call.kwargs)`` in eval mode
            ...

Calls come in one batch per table, so a predictor can group them (nn-Meter predicts each kernel type at once).
A predictor that times real runs can also set ``calibrate = True``: the table is then fitted to the whole
network's price on two paths, since a module timed alone runs faster than inside the network
(:func:`~nni_proxyless.latency.build_latency_table`, step 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from ..ops import MixedOp

__all__ = ['ModuleCall', 'LatencyPredictor', 'create_predictor', 'available_predictors', 'register_predictor',
           'NN_METER_DEVICES']

NN_METER_DEVICES = ('cortexA76cpu_tflite21', 'adreno640gpu_tflite21', 'adreno630gpu_tflite21',
                    'myriadvpu_openvino2019r2')


@dataclass(frozen=True)
class ModuleCall:
    """One module with the inputs it receives in the network (recorded from a forward of the dummy input)."""

    module: nn.Module
    args: tuple
    kwargs: dict

    def signature(self) -> str:
        """What determines the call's cost: the module's type, hyper-parameters, parameter and input shapes."""
        params = ','.join(f'{tuple(p.shape)}' for p in self.module.parameters())
        paths = ','.join(str(m.path.active) for m in self.module.modules() if isinstance(m, MixedOp))
        return '|'.join([type(self.module).__qualname__, repr(self.module), params, paths, _shapes(self.args),
                         _shapes(self.kwargs)])


@runtime_checkable
class LatencyPredictor(Protocol):
    """What ``applied_hardware`` can be besides a name or a table (see the module docstring)."""

    unit: str
    description: str

    def predict(self, calls: Sequence[ModuleCall]) -> list[float]:
        """One cost per call, in :attr:`unit`."""


_REGISTRY: dict[str, Callable[..., LatencyPredictor]] = {}


def register_predictor(name: str, factory: Callable[..., LatencyPredictor]) -> None:
    """Make ``create_predictor(name, **options)`` call ``factory(**options)``."""
    _REGISTRY[name] = factory


def available_predictors() -> list[str]:
    """The names ``create_predictor`` and ``Proxyless(applied_hardware=...)`` accept."""
    _load_builtins()
    return sorted(_REGISTRY)


def create_predictor(name: str, **options: Any) -> LatencyPredictor:
    """The predictor registered as ``name``, built with ``options`` (e.g. ``threads=1``, ``predictor_dir=``)."""
    _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f'Unknown latency predictor {name!r}; available: {", ".join(sorted(_REGISTRY))}, '
                         'a path to a latency table (.json), a LatencyTable, or an object with predict(calls).')
    try:
        return _REGISTRY[name](**options)
    except TypeError as error:
        raise ValueError(f'Bad predictor_options {sorted(options)} for predictor {name!r}: {error}. See the '
                         'predictor\'s documentation for the options it takes.') from error


def _load_builtins() -> None:
    if _REGISTRY:
        return
    from .flops import FlopsPredictor
    from .measure import MeasuredPredictor
    from .nnmeter import NnMeterPredictor
    register_predictor('cpu', lambda **options: MeasuredPredictor(device='cpu', **options))
    register_predictor('cuda', lambda **options: MeasuredPredictor(device='cuda', **options))
    register_predictor('flops', FlopsPredictor)
    for device in NN_METER_DEVICES:
        register_predictor(device, lambda _device=device, **options: NnMeterPredictor(_device, **options))


def _shapes(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f'{tuple(value.shape)}:{value.dtype}'
    if isinstance(value, (list, tuple)):
        return '(' + ','.join(_shapes(v) for v in value) + ')'
    if isinstance(value, dict):
        return '{' + ','.join(f'{k}={_shapes(v)}' for k, v in sorted(value.items())) + '}'
    return repr(value)
