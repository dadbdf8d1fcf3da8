"""Retrain a search's top architectures from scratch, each as a further trial of its web UI experiment.

``Proxyless(web_ui=WebUI(port, retrain_top_k=k))`` calls :func:`retrain_as_trials` after the search: the
``k`` most probable architectures (within ``latency_target`` if one is set) are built fresh from the model
space's constructor arguments, trained with a fresh copy of the evaluator (or ``retrain_evaluator``), and
each one's per-epoch validation metric and final result go to its own NNI trial, ``retrain top-1`` ...
``retrain top-k``, so the web UI plots them side by side with the search. The architecture, its probability
and predicted latency are written at the top of the trial's log and added to its reports.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from nni.common.serializer import is_traceable
from nni.nas.nn.pytorch import ModelSpace
from nni.nas.space import model_context

from ..export import Architecture
from ..callbacks.reports import MetricReporter
from ._protocol import retrain_trial
from .ui import WebUI, WebUIError

__all__ = ['fresh_subnet', 'fresh_evaluator', 'retrain_as_trials']

_logger = logging.getLogger('nni.proxyless')


def fresh_subnet(model_space: ModelSpace, architecture: dict[str, Any]) -> torch.nn.Module:
    """The subnet of ``architecture``, newly initialised: the space's class called again with its
    constructor arguments inside NNI's frozen-model context (``freeze`` on a searched supernet would keep
    the supernet's trained weights instead)."""
    with model_context(dict(architecture)):
        return model_space.trace_symbol(*model_space.trace_args, **model_space.trace_kwargs)


def fresh_evaluator(evaluator: Any) -> Any:
    """A new evaluator built from the same constructor arguments, traced arguments (trainer, module, data
    loaders) rebuilt too, so nothing of the search's training state is reused."""
    if not is_traceable(evaluator):
        return evaluator
    copy = evaluator.trace_copy()
    copy.trace_args = [fresh_evaluator(arg) for arg in copy.trace_args]
    copy.trace_kwargs = {key: fresh_evaluator(value) for key, value in copy.trace_kwargs.items()}
    return copy.get()


def retrain_as_trials(ui: WebUI, architectures: list[Architecture], model_space: ModelSpace, evaluator: Any,
                      *, seed: int) -> list[dict[str, Any]]:
    """Retrain each of ``architectures`` (most probable first) as the next trial of ``ui``'s experiment.

    Args:
        ui: the running web UI, its search trial still connected.
        architectures: what to retrain, at most ``ui.retrain_top_k``.
        model_space: the user's model space (its constructor arguments build each subnet).
        evaluator: the evaluator to copy for each retraining (``ui.retrain_evaluator`` takes precedence).
        seed: the ``rank``-th subnet is initialised with ``torch.manual_seed(seed + rank)``.

    Returns:
        One record per architecture: ``{'trial': name, 'architecture': Architecture, 'final': the final
        report (``None`` if the evaluator reported none)}``.

    Raises:
        WebUIError: if a trial does not connect, or connects under another name than expected.
    """
    results = []
    template = ui.retrain_evaluator if ui.retrain_evaluator is not None else evaluator
    for rank, architecture in enumerate(architectures, start=1):
        name = ui.next_trial()
        if name != retrain_trial(rank):
            raise WebUIError(f'Expected NNI trial {retrain_trial(rank)!r} to connect, got {name!r}.')
        figures = _figures(architecture)
        ui.log(f'{name}: {json.dumps(dict(architecture))} ' + json.dumps(figures))
        _logger.info('Retraining %s in NNI trial %r: %s', dict(architecture), name, figures)
        with torch.random.fork_rng():
            torch.manual_seed(seed + rank)
            model = fresh_subnet(model_space, architecture)
        results.append({'trial': name, 'architecture': architecture,
                        'final': _retrain(fresh_evaluator(template), model, ui, dict(architecture), figures)})
    if len(architectures) < ui.retrain_top_k:
        _logger.warning('Only %d architectures to retrain (retrain_top_k=%d): the remaining trials are cancelled.',
                        len(architectures), ui.retrain_top_k)
    return results


def _figures(architecture: Architecture) -> dict[str, float]:
    figures = {'probability': float(architecture.probability)}
    if architecture.latency is not None:
        figures[f'latency_{architecture.latency_unit}'] = float(architecture.latency)
    return figures


def _retrain(evaluator: Any, model: torch.nn.Module, ui: WebUI, architecture: dict[str, Any],
             figures: dict[str, float]) -> dict[str, Any] | None:
    """Train ``model`` with ``evaluator``; what it reports goes, with ``figures``, to the connected trial only.

    Returns:
        the final report (``None`` if the evaluator reported none).
    """
    if getattr(evaluator, 'trainer', None) is None:
        raise TypeError(f'retrain_evaluator must be an NNI Lightning evaluator (Classification, Regression, '
                        f'Lightning), got {type(evaluator).__name__}.')
    reporter = MetricReporter(figures=figures, sinks=[ui], forward=False, parameter=architecture)
    evaluator.trainer.callbacks.append(reporter)
    evaluator.evaluate(model)
    return reporter.finals[-1] if reporter.finals else None
