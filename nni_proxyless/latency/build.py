"""``build_latency_table``: price every candidate of a search space at the input it sees.

1. Probe: check that the space runs on the dummy input at every value of its choices and that its widths line up
   (:func:`~nni_proxyless.ops.check_space`: an error there names the layers and labels at fault, not the dummy
   input); then run the dummy input through the supernet once per candidate position (every label at its k-th
   value, every depth at its greatest) with pre-forward hooks that record the inputs of every mixed op and of
   every ``Repeat`` block (:func:`._pricing.probe`).
2. Price, in chunks for the predictor, what every mixed op needs (:mod:`._pricing`: ``LayerChoice`` candidates,
   layers whose arguments are choices at every combination, cell operations on every input, ``Repeat`` blocks),
   and, in a batch of their own, the whole network on a reference routing (first values, greatest depths) and on
   the calibration's architectures (step 4), as frozen subnets (plain layers, like the candidates: the mixed ops'
   own routing is no part of an architecture's latency).
3. Assemble: a candidate's cost is its price minus the cost of the choices nested in it; a block's own cost is
   its price minus its nested choices; the fixed part is the whole network minus all choices on that routing.
4. Calibrate (predictors that time real runs, ``calibrate = True``: ``'cpu'``, ``'cuda'``): a module timed alone,
   on warm caches, runs faster than inside the network, where it also reads its weights from memory. So
   ``CALIBRATION_PATHS`` architectures spread over the table's whole range (its fastest and slowest by the
   uncalibrated table, and random ones at evenly spaced quantiles of its predictions: :mod:`._extremes`) are also
   priced as whole frozen networks (by the predictor's ``for_whole_networks()`` where it has one), and the table is
   fitted to them by :mod:`._calibration`: each choice costs ``s * time + b * weight megabytes``. Random
   architectures alone sit mid-range, and a fit on them alone can miss the ends by 15% or more.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import random
import time
from typing import Any, Sequence

import torch
from torch import nn

from .. import _checks
from ..arch import ArchParameters, Selection
from ..ops import MixedOp, check_space
from ..ops.space_check import positions, reference_selections
from ..ops.subnet import subnet_of
from ..routing import uniform_selections
from ..supernet import build_supernet, model_defined_hooks
from .predictors import available_predictors, create_predictor
from ._calibration import CALIBRATION_PATHS, WithWeightMegabytes, calibrated
from ._extremes import extremes, spread
from ._pricing import calls_of, price, probe, terms_of
from .protocol import LatencyPredictor, ModuleCall
from .table import LatencyTable, Term

__all__ = ['build_latency_table', 'resolve_hardware', 'hardware_kind']

_logger = logging.getLogger('nni.proxyless')


def hardware_kind(hardware: Any) -> str:
    """What ``applied_hardware`` is: ``'table'``, ``'file'`` (a saved table), ``'name'`` or ``'object'``.

    Raises:
        ValueError: an unknown predictor name or an unsupported value, naming what is allowed.
    """
    if isinstance(hardware, LatencyTable):
        return 'table'
    if isinstance(hardware, (str, os.PathLike)) and str(hardware).endswith('.json'):
        return 'file'
    if isinstance(hardware, str):
        if hardware not in available_predictors():
            raise ValueError(f'Unknown applied_hardware {hardware!r}; allowed: {", ".join(available_predictors())}, '
                             'a path to a latency table (.json), a LatencyTable, or a predictor object.')
        return 'name'
    if isinstance(hardware, LatencyPredictor):
        return 'object'
    raise ValueError(f'applied_hardware={hardware!r} is not a predictor name, a .json latency table, a '
                     'LatencyTable, or an object with unit, description and predict(calls).')


def resolve_hardware(hardware: Any, **options: Any) -> LatencyPredictor | LatencyTable:
    """A predictor or a ready table from what ``applied_hardware`` accepts (see :func:`hardware_kind`)."""
    kind = hardware_kind(hardware)
    if kind == 'file':
        return LatencyTable.load(hardware)
    if kind == 'name':
        return create_predictor(hardware, **options)
    return hardware


def build_latency_table(model_space: nn.Module, hardware: Any, dummy_input: Sequence[int] | torch.Tensor,
                        **predictor_options: Any) -> LatencyTable:
    """Latency of every candidate of ``model_space`` on ``hardware`` (see :func:`resolve_hardware`).

    Args:
        model_space: an NNI model space, or a supernet already mutated by :class:`~nni_proxyless.Proxyless`.
        hardware: a predictor name (``'cpu'``, ``'cuda'``, ``'flops'``, an nn-Meter device), a path to a saved
            table, a :class:`LatencyTable` (returned after checking it fits the space), or a predictor object.
        dummy_input: the input shape, e.g. ``(1, 3, 224, 224)``, or an input tensor.
        **predictor_options: passed to the predictor (e.g. ``threads=1``, ``cache_dir=...``).

    Raises:
        SpaceError: the dummy input cannot run through the space at the first values of its choices (the message
            shows its shape, the module that failed and the error), or the space itself fails at some value of a
            choice or has widths that do not line up (the message names the layers, the argument and the labels).
    """
    supernet = model_space if any(isinstance(m, MixedOp) for m in model_space.modules()) \
        else _mutated_copy(model_space)
    ops = [m for m in supernet.modules() if isinstance(m, MixedOp)]
    routing = ops[0].routing
    labels = {label: list(choice.values) for label, choice in routing.choices.items()}
    source = resolve_hardware(hardware, **predictor_options)
    if isinstance(source, LatencyTable):
        source.check_space(labels, f'latency table {hardware}' if not isinstance(hardware, LatencyTable) else
                           'the latency table')
        return source
    x = _dummy_tensor(dummy_input, supernet)
    started = time.perf_counter()
    reference = reference_selections(ops)
    inputs = _probe(supernet, ops, x)
    reference_path = _sample(ops, reference)
    with routing.use(reference), torch.no_grad():
        if getattr(source, 'calibrate', False):
            table = _calibrated_table(supernet, ops, inputs, reference_path, labels, source, x)
        else:
            prices = price(calls_of(supernet, inputs, reference_path), source)
            prices['network'] = source.predict([_network(supernet, reference_path, x)])[0]
            table = _assembled(supernet, inputs, prices, labels, source, x)
    low, high = table.bounds()
    _logger.info('Latency table on %s built in %.1f s: %d terms, fixed %.3f %s, architectures from %.3f to '
                 '%.3f %s.', source.description, time.perf_counter() - started, len(table.terms), table.fixed,
                 table.unit, low, high, table.unit)
    return table


def _mutated_copy(model_space: nn.Module) -> nn.Module:
    space = copy.deepcopy(model_space)
    return build_supernet(space, ArchParameters(seed=0), model_defined_hooks(space, None))


def _dummy_tensor(dummy_input: Sequence[int] | torch.Tensor, supernet: nn.Module) -> torch.Tensor:
    if isinstance(dummy_input, torch.Tensor):
        return dummy_input.detach()
    shape = _checks.shape('dummy_input', dummy_input)
    parameter = next(supernet.parameters(), None)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(
        parameter.device if parameter is not None else 'cpu')


def _probe(supernet: nn.Module, ops: list[MixedOp], x: torch.Tensor) -> dict:
    """Inputs of every mixed op and Repeat block from forwards of ``x`` (see ``_pricing.probe``)."""
    check_space(supernet, ops[0].routing, (x,), {}, 'The dummy input')
    was_training = supernet.training
    supernet.eval()
    try:
        with torch.no_grad():
            inputs = probe(supernet, x, [reference_selections(ops, position) for position in positions(ops)])
    finally:
        supernet.train(was_training)
    missing = sorted({label for op in ops if id(op) not in inputs for label in op.labels})
    if missing:
        raise ValueError(f'The dummy input never reaches the choices {missing}; they cannot be priced.')
    return inputs


def _sample(ops: list[MixedOp], selections: dict[str, Selection]) -> dict[str, Any]:
    """The architecture (an NNI sample) of these selections."""
    choices = ops[0].routing.choices
    return {label: choices[label].sample_value(selection.active) for label, selection in selections.items()}


def _network(supernet: nn.Module, sample: dict[str, Any], x: torch.Tensor) -> ModuleCall:
    """The whole network on one architecture, as a frozen subnet. Whole networks are priced in a batch of their
    own: a measuring predictor times each call of a batch on its own, but in rounds with the others."""
    return ModuleCall(subnet_of(supernet, sample), (x,), {})


def _assembled(supernet: nn.Module, inputs: dict, prices: dict, labels: dict, source: LatencyPredictor,
               x: torch.Tensor) -> LatencyTable:
    """Step 3 of the module docstring, on the reference routing."""
    terms: list[Term] = []
    total = terms_of(supernet, (), prices, inputs, terms)
    return LatencyTable(labels=labels, fixed=prices['network'] - total, terms=terms, unit=source.unit,
                        hardware=source.description, dummy_input=list(x.shape))


def _calibrated_table(supernet: nn.Module, ops: list[MixedOp], inputs: dict, reference_path: dict[str, Any],
                      labels: dict, source: LatencyPredictor, x: torch.Tensor) -> LatencyTable:
    """Steps 2-4 for a predictor that times real runs: the table of the choices' times, and its twin of their
    weights' megabytes, fitted to whole-network timings of architectures over the table's whole range."""
    prices = price(calls_of(supernet, inputs, reference_path), WithWeightMegabytes(source))
    table, megabytes = (_assembled(supernet, inputs, {**{key: p[part] for key, p in prices.items()}, 'network': 0.0},
                                   labels, source, x) for part in (0, 1))  # no fixed part yet: paths need the range
    paths = [reference_path] + _calibration_paths(ops, table)
    whole_networks = getattr(source, 'for_whole_networks', lambda: source)()
    wholes = whole_networks.predict([_network(supernet, path, x) for path in paths])
    table = dataclasses.replace(table, fixed=table.fixed + wholes[0])
    return calibrated(table, megabytes, paths, wholes)


def _calibration_paths(ops: list[MixedOp], table: LatencyTable) -> list[dict[str, Any]]:
    """``CALIBRATION_PATHS`` architectures over the uncalibrated ``table``'s whole range (seeded): its fastest and
    slowest (:func:`._extremes.extremes`), and random ones at evenly spaced quantiles of its predictions."""
    searched = {label: list(choice.values) for label, choice in ops[0].routing.choices.items()
                if choice.kind != 'input'}

    def draw(rng: random.Random) -> dict[str, Any]:
        return _sample(ops, uniform_selections(ops[0].routing.choices, rng))

    return [*extremes(table, draw, searched, 1, fastest=True), *extremes(table, draw, searched, 1, fastest=False),
            *spread(table, draw, CALIBRATION_PATHS - 2)]

