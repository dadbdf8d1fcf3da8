"""The web UI asked for through NNI's own API: ``NasExperiment(...).run(port=8081)`` (or ``start(8081)``).

NNI 3.0 runs a one-shot strategy inside ``NasExperiment.start`` without its manager, and hands the strategy
neither the experiment nor the port. :func:`~nni_proxyless._nni_internals.running_experiment` reads both,
read-only, from the frame of ``NasExperiment.start`` on the call stack (the strategy runs inside it): nothing of
NNI is patched or wrapped.

NNI's ``run`` / ``start`` default the port to 8080, and the strategy tells "no port given" from a port the user
wrote (8080 included) by the object itself (see ``running_experiment``). The default shows no web UI, as in NNI;
a port given shows the search there, exactly as ``Proxyless(web_ui=port)`` does. ``NNI_PROXYLESS_WEB_UI=off``
turns that off for scripts run unchanged (e.g. in CI).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .._nni_internals import Experiments, running_experiment
from .ui import WebUI

__all__ = ['WEB_UI_ENV', 'web_ui_disabled', 'requested_web_ui', 'name_experiment']

_logger = logging.getLogger('nni.proxyless.webui')

WEB_UI_ENV = 'NNI_PROXYLESS_WEB_UI'
"""Set to ``off`` (or ``0``, ``false``, ``no``) to show no web UI even when ``run()`` / ``start()`` get a port."""


def web_ui_disabled() -> bool:
    """Whether ``NNI_PROXYLESS_WEB_UI`` turns the web UI off."""
    return os.environ.get(WEB_UI_ENV, '').strip().lower() in ('0', 'off', 'false', 'no')


def requested_web_ui(default_name: str) -> WebUI | None:
    """The web UI for the port given to the running experiment's ``run`` / ``start``, or ``None`` (no port, or
    ``NNI_PROXYLESS_WEB_UI=off``). It is named and kept where the experiment is."""
    found = running_experiment()
    if found is None or found[1] is None:
        return None
    experiment, port = found
    if web_ui_disabled():
        _logger.info('Port %d given to the experiment, but no web UI: %s=%s', port, WEB_UI_ENV,
                     os.environ[WEB_UI_ENV])
        return None
    config: Any = experiment.config
    _logger.info('Port %d given to the experiment: the search is shown in NNI\'s web UI at http://localhost:%d',
                 port, port)
    return WebUI(port, experiment_name=config.experiment_name or f'{default_name} (web UI)',
                 experiment_dir=str(Path(str(config.experiment_working_directory)).expanduser()))


def name_experiment(name: str) -> None:
    """Name the running experiment's entry of ``nnictl experiment list`` (NNI leaves it unnamed) after the space and
    the strategy, unless the user named it in the experiment's config."""
    found = running_experiment()
    if found is None or found[0].config.experiment_name:
        return
    Experiments().update_experiment(found[0].id, 'experimentName', name)
