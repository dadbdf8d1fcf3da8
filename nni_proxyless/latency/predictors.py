"""Latency predictors behind one front door: ``create_predictor(name, **options)``.

The registry knows the built-in predictors (``'cpu'``, ``'cuda'``, ``'flops'``, nn-Meter's devices); it imports
their implementations, which depend only on the protocol (:mod:`nni_proxyless.latency.protocol`).
"""

from __future__ import annotations

from typing import Any, Callable

from .flops import FlopsPredictor
from .measure import MeasuredPredictor
from .nnmeter import NN_METER_DEVICES, NnMeterPredictor
from .protocol import LatencyPredictor

__all__ = ['create_predictor', 'available_predictors', 'register_predictor', 'NN_METER_DEVICES']

_REGISTRY: dict[str, Callable[..., LatencyPredictor]] = {}


def register_predictor(name: str, factory: Callable[..., LatencyPredictor]) -> None:
    """Make ``create_predictor(name, **options)`` call ``factory(**options)``."""
    _REGISTRY[name] = factory


def available_predictors() -> list[str]:
    """The names ``create_predictor`` and ``Proxyless(applied_hardware=...)`` accept."""
    return sorted(_REGISTRY)


def create_predictor(name: str, **options: Any) -> LatencyPredictor:
    """The predictor registered as ``name``, built with ``options`` (e.g. ``threads=1``, ``predictor_dir=``)."""
    if name not in _REGISTRY:
        raise ValueError(f'Unknown latency predictor {name!r}; available: {", ".join(sorted(_REGISTRY))}, '
                         'a path to a latency table (.json), a LatencyTable, or an object with predict(calls).')
    try:
        return _REGISTRY[name](**options)
    except TypeError as error:
        raise ValueError(f'Bad predictor_options {sorted(options)} for predictor {name!r}: {error}. See the '
                         'predictor\'s documentation for the options it takes.') from error


register_predictor('cpu', lambda **options: MeasuredPredictor(device='cpu', **options))
register_predictor('cuda', lambda **options: MeasuredPredictor(device='cuda', **options))
register_predictor('flops', FlopsPredictor)
for _device in NN_METER_DEVICES:
    register_predictor(_device, lambda _device=_device, **options: NnMeterPredictor(_device, **options))
