"""PNG plots of a search, saved when it ends (a Lightning callback).

* ``probabilities.png``: every label's candidate probabilities over the epochs (one heatmap per label);
* ``curves.png``: the validation metric and, with a latency table, the expected latency per epoch;
* ``top_k.png``: the top-k architectures' predicted latency against their probability (with a table);
* ``latency_front.png``: one pick per latency budget (:meth:`~nni_proxyless.Proxyless.latency_front`), drawn when
  it is asked for.

Figures are drawn on :class:`matplotlib.figure.Figure` objects, not through ``pyplot``: no backend is selected or
changed, so importing the package leaves the user's matplotlib set-up alone.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from pytorch_lightning import Callback, LightningModule, Trainer

from .._io import run_folder
from ..export import top_k

__all__ = ['SearchPlots', 'front_plot']

_logger = logging.getLogger('nni.proxyless')


class SearchPlots(Callback):
    """Record the architecture distribution each epoch; draw the plots into ``folder`` when training ends.

    Args:
        folder: where the PNG files go (``None``: the trainer logger's folder, e.g. TensorBoard's
            ``lightning_logs/version_N``; no plots when the trainer has no logger).
        top: how many architectures the top-k plot shows. Default 20.
    """

    def __init__(self, folder: str | Path | None = None, top: int = 20):
        self.folder = None if folder is None else Path(folder)
        self.top = top
        self.history: list[dict[str, Any]] = []
        self.saved_in: Path | None = None  # the folder the plots went to, once saved

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        arch = pl_module.arch
        self.history.append({'probs': {label: arch.probs(label).tolist() for label in arch.labels()},
                             'report': dict(pl_module.reports[-1]) if pl_module.reports else {}})

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        folder = run_folder(self.folder, trainer)  # every rank: reading the logger's folder is a collective call
        if folder is None or not trainer.is_global_zero or not self.history:
            return
        folder.mkdir(parents=True, exist_ok=True)
        files = [_probabilities(self.history, pl_module.arch, folder / 'probabilities.png'),
                 _curves(self.history, folder / 'curves.png')]
        if pl_module.latency is not None:
            files.append(_top_k(pl_module, self.top, folder / 'top_k.png'))
        self.saved_in = folder
        _logger.info('Search plots: %s', ', '.join(str(f) for f in files))

    def state_dict(self) -> dict[str, Any]:
        return {'history': self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict['history'])


def _probabilities(history: list[dict], arch: Any, path: Path) -> Path:
    labels = arch.labels()
    columns = min(4, len(labels))
    rows = math.ceil(len(labels) / columns)
    figure = Figure(figsize=(4 * columns, 1.2 + 0.5 * rows * 4))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, label in zip(axes.flat, labels):
        values = np.array([epoch['probs'][label] for epoch in history]).T
        image = ax.imshow(values, aspect='auto', cmap='viridis', vmin=values.min(),
                          vmax=max(values.max(), values.min() + 1e-9))
        ax.set_title(label, fontsize=9)
        ax.set_yticks(range(len(arch.choices[label].values)), [str(v) for v in arch.choices[label].values],
                      fontsize=7)
        ax.set_xlabel('epoch', fontsize=8)
        figure.colorbar(image, ax=ax, fraction=0.05)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis('off')
    figure.suptitle('Architecture probabilities per label')
    return _save(figure, path)


def _curves(history: list[dict], path: Path) -> Path:
    epochs = range(len(history))
    figure = Figure(figsize=(7, 4))
    ax = figure.subplots()
    ax.plot(epochs, [h['report'].get('default', np.nan) for h in history], 'o-', color='tab:blue')
    ax.set_xlabel('epoch')
    ax.set_ylabel('validation metric (top-1 export)', color='tab:blue')
    latency = [key for key in history[-1]['report'] if key.startswith('expected_latency_')]
    if latency:
        twin = ax.twinx()
        twin.plot(epochs, [h['report'].get(latency[0], np.nan) for h in history], 's--', color='tab:red')
        twin.set_ylabel(latency[0].replace('_', ' '), color='tab:red')
    ax.set_title('Search progress')
    return _save(figure, path)


def _top_k(pl_module: Any, k: int, path: Path) -> Path:
    table = pl_module.latency.table
    best = top_k(pl_module.arch, k)
    figure = Figure(figsize=(7, 4))
    ax = figure.subplots()
    ax.scatter([table.predict(a) for a in best], [a.probability for a in best], c=range(len(best)), cmap='plasma')
    ax.set_xlabel(f'predicted latency ({table.unit})')
    ax.set_ylabel('probability')
    ax.set_title(f'Top-{len(best)} architectures (colour: rank)')
    return _save(figure, path)


def front_plot(front: list[Any], unit: str, path: Path) -> Path:
    """The picks of :func:`~nni_proxyless.front.latency_front`: their validation metric with the supernet's weights
    (their probability when they were not evaluated) against their predicted latency, each budget a dotted line."""
    picks = [pick for pick in front if pick.architecture is not None]
    measured = all(pick.architecture.supernet_metric is not None for pick in picks)
    figure = Figure(figsize=(7, 4))
    ax = figure.subplots()
    for pick in front:
        ax.axvline(pick.target, color='0.8', linestyle=':', linewidth=1)
    ax.plot([pick.architecture.latency for pick in picks],
            [pick.architecture.supernet_metric if measured else pick.architecture.probability for pick in picks],
            marker='o', drawstyle='steps-post')
    ax.set_xlabel(f'predicted latency ({unit}); dotted: the budgets')
    ax.set_ylabel('validation metric, supernet weights' if measured else 'probability')
    ax.set_title(f'Latency front: the pick within each of {len(front)} budgets')
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)  # a Figure without pyplot draws with the Agg canvas and is freed with it
    return path
