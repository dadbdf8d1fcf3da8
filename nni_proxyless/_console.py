"""What a search prints: NNI's messages that our flow triggers and that say nothing to the user are dropped, and
NNI's colour codes are left out of logs that do not go to a terminal.

Dropped, by logger and message (nothing else; the user's own warnings are left alone):

* ``nni.nas.experiment.config.experiment``: "`training_service` will be ignored for sequential execution engine"
  (NNI fills in a training service for every experiment, then warns about it each time it checks the config
  of a one-shot one: over a dozen times a run);
* ``nni.nas.oneshot.pytorch.strategy``: "Checkpoint callback is found to be None in evaluator trainer" (NNI's
  one-shot strategies check for a Lightning checkpoint callback they do not need);
* ``nni.experiment``: "Successfully update maxTrialNumber." (the web UI's own update at its end).

They are installed when a ``Proxyless`` strategy is built and then stay: NNI checks the experiment's config, and
warns, before the strategy runs and again when the experiment stops (at the process's exit). Nothing else of the
process's logging changes: a search leaves handlers, filters, formatters and warnings filters as it found them.

To quiet NNI's remaining information messages too: ``logging.getLogger('nni').setLevel(logging.WARNING)``.
"""

from __future__ import annotations

import logging
import re
import sys

from ._nni_internals import NNI_NOISE

__all__ = ['quiet_nni_messages']

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


def quiet_nni_messages() -> None:
    """Install the filters above (once), and plain text on NNI's console handler when stdout is not a terminal."""
    for name, start in NNI_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Dropped) for f in logger.filters):
            logger.addFilter(_Dropped(start))
    if sys.stdout.isatty():
        return
    for handler in logging.getLogger('nni').handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, 'stream', None) is sys.stdout \
                and handler.formatter is not None and not isinstance(handler.formatter, _Plain):
            handler.setFormatter(_Plain(handler.formatter))
