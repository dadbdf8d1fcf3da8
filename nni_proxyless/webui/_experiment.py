"""The NNI experiment behind a web UI: its configuration, and the command line of its relay trials."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from nni.experiment import ExperimentConfig

from ._protocol import SEARCH_TRIAL, retrain_trial

__all__ = ['RELAY_MODULE', 'ENDED', 'experiment_config', 'relay_command']

RELAY_MODULE = 'nni_proxyless.webui._relay'
"""What every trial runs (``python -m RELAY_MODULE``)."""

ENDED = frozenset({'SUCCEEDED', 'FAILED', 'USER_CANCELED', 'SYS_CANCELED', 'EARLY_STOPPED'})
"""NNI's statuses of a trial that has ended."""

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the relay's working directory: `-m` finds the package


def experiment_config(name: str, root: Path, retrain_top_k: int) -> ExperimentConfig:
    """A local experiment whose trials are named by their parameter: ``search``, then ``retrain top-1`` ...

    NNI's grid-search tuner hands out the names in order, one trial at a time.
    """
    trials = [SEARCH_TRIAL] + [retrain_trial(rank) for rank in range(1, retrain_top_k + 1)]
    config = ExperimentConfig('local')
    config.experiment_name = name
    config.experiment_working_directory = str(root)
    config.search_space = {'trial': {'_type': 'choice', '_value': trials}}
    config.tuner.name = 'GridSearch'
    config.trial_concurrency = 1
    config.max_trial_number = len(trials)
    config.trial_code_directory = str(_PACKAGE_PARENT)
    return config


def relay_command(relay_port: int, token: str, manager_port: int) -> str:
    """The trial command: the relay, connecting back to ``relay_port`` with ``token``."""
    return ' '.join(shlex.quote(part) for part in [
        sys.executable, '-m', RELAY_MODULE, '--port', str(relay_port), '--token', token,
        '--manager-port', str(manager_port)])
