"""Re-ranking exported architectures by their validation metric with the supernet's trained weights.

The top-k export ranks architectures by probability. ``Proxyless(rerank_top_k=k)`` (or
:meth:`~nni_proxyless.Proxyless.rerank`) evaluates the most probable ones on the evaluator's validation data,
each through the supernet routed to it, in eval mode and with BatchNorm statistics of its own, and orders them
by that metric (ties: the more probable first), as single-path NAS and Once-for-All rank the subnets of a
trained supernet.

The metric is the one the evaluator reports to NNI. NNI's ``SupervisedLearningModule`` (``Classification``:
``{'acc': torchmetrics.Accuracy}``, ``Regression``: ``{'mse': torchmetrics.MeanSquaredError}``) logs
``'val_' + name`` in ``validation_step`` for each of its ``metrics`` and reports the first; whether higher is
better is what that torchmetrics metric declares (``higher_is_better``). Each batch's logged value is averaged
over the whole validation loader, weighted by batch size, as Lightning's epoch-level mean is.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch
from pytorch_lightning.utilities.data import extract_batch_size

from .callbacks.batchnorm import seeded_pass, training_mode
from .export import Architecture

if TYPE_CHECKING:
    from .training import ProxylessModule

__all__ = ['rerank', 'reported_metric', 'validation_metric']


def rerank(module: ProxylessModule, architectures: list[Architecture], loader: Iterable[Any], *,
           statistics: Callable[[dict[str, Any]], Any] | None = None, metric: str | None = None,
           higher_is_better: bool | None = None) -> list[Architecture]:
    """``architectures`` ordered by their validation metric through the supernet, best first.

    Sets :attr:`~nni_proxyless.Architecture.supernet_metric` on each; the supernet is routed back to the
    architecture it validates (its top-1 export) afterwards.

    Args:
        module: the search's module (its supernet, routing and the evaluator's module).
        architectures: the architectures to evaluate.
        loader: the validation data, read once per architecture (a pass seeded by the search's seed).
        statistics: ``statistics(sample)``, a context in which the supernet has BatchNorm statistics recomputed
            for ``sample`` (``None``: the supernet's own).
        metric, higher_is_better: what ``validation_step`` logs and its direction; both or neither
            (``None``: :func:`reported_metric`).
    """
    if (metric is None) != (higher_is_better is None):
        raise ValueError(f'Give both metric and higher_is_better, or neither (got metric={metric!r}, '
                         f'higher_is_better={higher_is_better!r}).')
    if metric is None:
        metric, higher_is_better = reported_metric(module.training_module)
    try:
        for architecture in architectures:
            module.route(module.arch.selections_for(architecture))
            with statistics(architecture) if statistics is not None else contextlib.nullcontext():
                architecture.supernet_metric = validation_metric(module, loader, metric, seed=module.arch.seed)
    finally:
        module.route(module.validated_selections())
    sign = -1.0 if higher_is_better else 1.0
    return sorted(architectures, key=lambda a: (sign * a.supernet_metric, -a.probability))


def reported_metric(training_module: Any) -> tuple[str, bool]:
    """What the evaluator's ``validation_step`` logs the metric NNI receives as, and whether higher is better.

    Raises:
        ValueError: the module has no ``metrics`` dict whose first metric declares ``higher_is_better`` (NNI's
            ``Classification`` and ``Regression`` have one); the message says what to pass instead.
    """
    metrics = getattr(training_module, 'metrics', None)
    if metrics is not None and hasattr(metrics, 'items') and len(metrics) > 0:
        name, first = next(iter(metrics.items()))
        if isinstance(getattr(first, 'higher_is_better', None), bool):
            return f'val_{name}', first.higher_is_better
    raise ValueError(
        f'Re-ranking needs the validation metric of the evaluator\'s module {type(training_module).__name__}: it '
        'has no `metrics` dict whose first torchmetrics metric says higher_is_better (as NNI\'s Classification '
        'and Regression have). Pass what its validation_step logs and its direction: '
        "strategy.rerank(strategy.top_architectures(k), metric='val_<name>', higher_is_better=True or False).")


def validation_metric(module: ProxylessModule, loader: Iterable[Any], key: str, seed: int) -> float:
    """The mean over one pass of ``loader`` of what the evaluator's ``validation_step`` logs as ``key``, weighted
    by batch size (the ``batch_size`` given to ``log``, else the batch's), in eval mode without gradients."""
    logged: list[tuple[float, int | None]] = []

    def capture(name: str, value: Any, *args: Any, batch_size: int | None = None, **kwargs: Any) -> None:
        if name == key:
            logged.append((float(torch.as_tensor(value).detach()), batch_size))

    evaluated = module.training_module
    total = count = 0.0
    with training_mode(evaluated, False), torch.no_grad(), module.logging_to(capture), \
            seeded_pass(loader, seed, limit=None) as batches:
        for index, batch in enumerate(batches):
            batch = module.trainer.strategy.batch_to_device(batch, module.device)
            logged.clear()
            evaluated.validation_step(batch, index)
            if not logged:
                raise ValueError(f'The evaluator\'s validation_step logged no {key!r}: pass the name it logs '
                                 'as metric= to Proxyless.rerank.')
            value, size = logged[-1]
            size = size if size is not None else extract_batch_size(batch)
            total, count = total + value * size, count + size
    if not count:
        raise ValueError('Re-ranking needs validation data: the validation loader gave no batch.')
    return total / count
