"""Latency: tables of per-candidate costs, the predictors that fill them, and the latency-aware loss.

Front doors: :func:`build_latency_table` (a space and a predictor name in, a :class:`LatencyTable` out) and
:func:`create_predictor` (``'cpu'``, ``'cuda'``, ``'flops'``, nn-Meter's devices).
"""

from .build import build_latency_table, resolve_hardware
from .loss import OFFICIAL_PARAMS, LatencyLoss, LatencyObjective
from .predictors import NN_METER_DEVICES, available_predictors, create_predictor, register_predictor
from .protocol import LatencyPredictor, ModuleCall
from .table import LatencyTable, TableError, Term

__all__ = ['build_latency_table', 'resolve_hardware', 'LatencyTable', 'TableError', 'Term', 'LatencyLoss',
           'LatencyObjective', 'OFFICIAL_PARAMS', 'LatencyPredictor', 'ModuleCall', 'create_predictor',
           'available_predictors', 'register_predictor', 'NN_METER_DEVICES']
