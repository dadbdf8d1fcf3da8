"""What a search prints: the messages of NNI, Lightning and torch that our flow triggers and that say nothing to
the user are dropped while the search runs, and NNI's colour codes are left out of logs that do not go to a
terminal. Everything installed here is removed when the search ends: after ``exp.run()`` the process's logging
handlers, filters, formatters and warnings filters are those it had before the strategy was built (the warnings
filters are those of ``warnings.catch_warnings``: filters the user's own code adds while the search runs end
with it too).

Dropped, by logger (or warning category) and message; nothing else, the user's own messages are left alone:

* ``nni.nas.experiment.config.experiment``: "`training_service` will be ignored for sequential execution engine"
  (NNI fills in a training service for every experiment, then warns about it each time it checks the config of
  a one-shot one: over a dozen times a run). NNI checks the config while the experiment starts, before the
  strategy runs, so this one filter is installed when ``Proxyless`` is built; when the search starts, the
  experiment's ``training_service`` is cleared (NNI ignores it for the sequential engine, its message says so),
  so that the checks after the search, when the experiment stops, have nothing to warn about.
* ``nni.experiment``: "Successfully update maxTrialNumber." (the web UI's own update at its end).
* ``pytorch_lightning.utilities.rank_zero``: "Loading `train_dataloader` to estimate number of stepping batches."
  (the default learning rate reads the trainer's plan).
* Warnings: torch's ``FutureWarning`` that ``isinstance(treespec, LeafSpec)`` is deprecated (Lightning's own
  code), Lightning's "The number of training batches (N) is smaller than the logging interval" (short searches
  on small data), and ``pkg_resources``' deprecation (nnictl, imported for the web UI).

NNI's one-shot base class warns "Checkpoint callback is found to be None" whenever an experiment saves its
checkpoint; ``Proxyless.state_dict`` drops that one message around its call (:func:`dropped`).

To quiet NNI's remaining information messages too: ``logging.getLogger('nni').setLevel(logging.WARNING)``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings
from typing import Any, Iterator

from ._nni_internals import NNI_NOISE, ignore_training_service

__all__ = ['CHECKPOINT_MESSAGE', 'dropped', 'quiet_experiment_start', 'search_console']

_CONFIG = 'nni.nas.experiment.config.experiment'
_AT_START = (_CONFIG, NNI_NOISE[_CONFIG])
CHECKPOINT_MESSAGE = ('nni.nas.oneshot.pytorch.strategy', NNI_NOISE['nni.nas.oneshot.pytorch.strategy'])
"""NNI's one-shot base class's message when an experiment saves its checkpoint: (logger, start)."""
_DURING_SEARCH = [
    ('nni.experiment', NNI_NOISE['nni.experiment']),
    ('pytorch_lightning.utilities.rank_zero', 'Loading `train_dataloader` to estimate number of stepping batches.'),
]
_WARNINGS = [
    (r'`isinstance\(treespec, LeafSpec\)` is deprecated', FutureWarning),
    (r'The number of training batches \(\d+\) is smaller than the logging interval', UserWarning),
    (r'pkg_resources is deprecated as an API', UserWarning),
]
_ANSI = re.compile(r'\x1b\[[0-9;]*m')


class _Dropped(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


class _Plain(logging.Formatter):
    """A formatter that gives another's text without its colour codes."""

    def __init__(self, coloured: logging.Formatter) -> None:
        super().__init__()
        self.coloured = coloured

    def format(self, record: logging.LogRecord) -> str:
        return _ANSI.sub('', self.coloured.format(record))


_installed: list[tuple[logging.Logger, _Dropped]] = []          # the filter of quiet_experiment_start
_plain: list[tuple[logging.Handler, logging.Formatter]] = []     # handlers given plain text, their own formatter


def quiet_experiment_start() -> None:
    """Drop NNI's config message while the experiment starts, and give NNI's console handler plain text when
    stdout is not a terminal; both until the search ends (:func:`search_console`). Idempotent."""
    if not _installed:
        logger, start = logging.getLogger(_AT_START[0]), _AT_START[1]
        _installed.append((logger, _Dropped(start)))
        logger.addFilter(_installed[0][1])
    if sys.stdout.isatty():
        return
    for handler in logging.getLogger('nni').handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, 'stream', None) is sys.stdout \
                and handler.formatter is not None and not isinstance(handler.formatter, _Plain):
            _plain.append((handler, handler.formatter))
            handler.setFormatter(_Plain(handler.formatter))


@contextlib.contextmanager
def dropped(logger: str, start: str) -> Iterator[None]:
    """Drop the messages of ``logger`` that start with ``start`` inside the block."""
    found, dropping = logging.getLogger(logger), _Dropped(start)
    found.addFilter(dropping)
    try:
        yield
    finally:
        found.removeFilter(dropping)


@contextlib.contextmanager
def search_console(experiment: Any = None) -> Iterator[None]:
    """The search's messages: the drops above while the block runs; when it ends, everything this module
    installed is removed. ``experiment``: the running ``NasExperiment``, whose ``training_service`` is cleared."""
    if experiment is not None and getattr(experiment, 'config', None) is not None:
        ignore_training_service(experiment)
    try:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            for message, category in _WARNINGS:
                warnings.filterwarnings('ignore', message=message, category=category)
            for logger, start in _DURING_SEARCH:
                stack.enter_context(dropped(logger, start))
            yield
    finally:
        _restore()


def _restore() -> None:
    while _installed:
        logger, dropping = _installed.pop()
        logger.removeFilter(dropping)
    while _plain:
        handler, formatter = _plain.pop()
        if isinstance(handler.formatter, _Plain):
            handler.setFormatter(formatter)
