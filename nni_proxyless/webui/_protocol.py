"""The line protocol between :class:`~nni_proxyless.webui.WebUI` and its relay trial: one JSON object a line.

The relay connects to the search process and introduces itself with the token it was given, its trial's name
and NNI trial id::

    {"token": "...", "trial": "search", "trial_id": "Ab1Cd"}

then acts on each message and answers it::

    {"type": "intermediate", "metrics": {...}}  ->  nni.report_intermediate_result(metrics), reply {"ok": true}
    {"type": "final", "metrics": {...}}         ->  nni.report_final_result(metrics), reply {"ok": true}
    {"type": "log", "text": "..."}              ->  print it (the trial's log), reply {"ok": true}
    {"type": "done", "failed": false|true}      ->  exit 0 (trial SUCCEEDED) or 1 (trial FAILED), no reply

An unknown message is answered ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ['INTERMEDIATE', 'FINAL', 'LOG', 'DONE', 'SEARCH_TRIAL', 'retrain_trial', 'encode', 'decode', 'hello',
           'reply', 'clean_metrics']

INTERMEDIATE, FINAL, LOG, DONE = 'intermediate', 'final', 'log', 'done'
SEARCH_TRIAL = 'search'
"""The name (NNI parameter ``trial``) of the trial that shows the search."""


def retrain_trial(rank: int) -> str:
    """The name (NNI parameter ``trial``) of the trial that retrains the ``rank``-th exported architecture."""
    return f'retrain top-{rank}'


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line."""
    return json.dumps(message).encode() + b'\n'


def decode(line: bytes) -> Any:
    """The message on a line (``None`` for an empty line: the connection closed). Raises ValueError if garbled."""
    return json.loads(line or b'null')


def hello(token: str, trial: str, trial_id: str | None) -> dict[str, Any]:
    """The relay's first message."""
    return {'token': token, 'trial': trial, 'trial_id': trial_id}


def reply(error: str | None = None) -> bytes:
    """The relay's answer to a message: ok, or the error."""
    return encode({'ok': True} if error is None else {'ok': False, 'error': error})


def clean_metrics(metrics: dict[str, Any]) -> dict[str, float | str]:
    """Metrics as NNI takes them: a dict with a numeric ``'default'``, numbers (or strings) by name.

    Raises:
        TypeError: ``metrics`` is not a dict, or holds something other than numbers and strings.
        ValueError: ``metrics`` has no ``'default'``.
    """
    if not isinstance(metrics, dict):
        raise TypeError(f'metrics must be a dict, got {type(metrics).__name__}')
    if 'default' not in metrics:
        raise ValueError(f"metrics must have a 'default' entry (the value NNI plots), got keys {sorted(metrics)}")
    clean: dict[str, float | str] = {}
    for key, value in metrics.items():
        try:
            clean[str(key)] = value if isinstance(value, str) and key != 'default' else float(value)
        except (TypeError, ValueError):
            raise TypeError(f'metric {key!r} must be a number, got {type(value).__name__}') from None
    return clean
