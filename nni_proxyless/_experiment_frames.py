"""What NNI's ``NasExperiment`` methods were called with, read from their frames on the call stack.

NNI 3.0 hands a strategy neither the experiment nor the arguments of the call that reaches it:
``NasExperiment.start(port)`` runs the strategy without passing the port, and
``NasExperiment.export_top_models(top_k, formatter=..., **kwargs)`` calls ``strategy.list_models(limit=top_k)``
and drops ``kwargs``. The strategy runs inside those calls, so it reads their locals, read-only, from the frame
whose code is the method's own: nothing of NNI is patched or wrapped. Checked against NNI 3.0.
"""

from __future__ import annotations

import sys
from types import CodeType
from typing import Any

from nni.nas.experiment import NasExperiment

__all__ = ['EXPORT_TOP_MODELS', 'START', 'export_arguments', 'frame_locals']

START = NasExperiment.start.__code__
EXPORT_TOP_MODELS = NasExperiment.export_top_models.__code__


def frame_locals(code: CodeType) -> dict[str, Any] | None:
    """The locals of the innermost ``NasExperiment`` method running ``code`` on the call stack (``None``: none)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code and isinstance(frame.f_locals.get('self'), NasExperiment):
            return dict(frame.f_locals)
        frame = frame.f_back
    return None


def export_arguments() -> dict[str, Any]:
    """The extra keyword arguments given to the running ``NasExperiment.export_top_models`` (``{}`` outside one)."""
    found = frame_locals(EXPORT_TOP_MODELS)
    return dict(found.get('kwargs') or {}) if found is not None else {}
