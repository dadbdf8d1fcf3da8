"""The NNI experiment behind a web UI: its configuration, its tuner's channel, and its relay trials' command."""
from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

from nni.experiment import Experiment, ExperimentConfig, RunMode

from ._protocol import SEARCH_TRIAL, retrain_trial
from ._tuner import channel_url

__all__ = ['RELAY_MODULE', 'ENDED', 'ExperimentTunedHere', 'experiment_config', 'relay_command', 'write_token']

RELAY_MODULE = 'nni_proxyless.webui._relay'
"""What every trial runs (``python -m RELAY_MODULE``)."""

ENDED = frozenset({'SUCCEEDED', 'FAILED', 'USER_CANCELED', 'SYS_CANCELED', 'EARLY_STOPPED'})
"""NNI's statuses of a trial that has ended."""

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the relay's working directory: `-m` finds the package


def experiment_config(name: str, root: Path, retrain_top_k: int) -> ExperimentConfig:
    """A local experiment whose trials are named by their parameter: ``search``, then ``retrain top-1`` ...

    The tuner (:mod:`._tuner`, in this process; ``GridSearch``, as configured, where NNI starts the tuner itself,
    as ``nnictl resume`` does) hands out the names in order, one trial at a time. The trial limit is one more than
    there are names, so that NNI's status reads ``RUNNING`` while the last trial runs (at the limit, NNI's manager
    says ``NO_MORE_TRIAL`` from the moment it submits the last trial); :class:`~.ui.WebUI` lowers it to the
    trials run when it ends the last one, and the manager reads ``DONE`` until it is stopped (NNI then lists the
    experiment as ``STOPPED``, as every experiment whose manager no longer runs).
    """
    trials = [SEARCH_TRIAL] + [retrain_trial(rank) for rank in range(1, retrain_top_k + 1)]
    config = ExperimentConfig('local')
    config.experiment_name = name
    config.experiment_working_directory = str(root)
    config.search_space = {'trial': {'_type': 'choice', '_value': trials}}
    config.tuner.name = 'GridSearch'
    config.trial_concurrency = 1
    config.max_trial_number = len(trials) + 1
    config.trial_code_directory = str(_PACKAGE_PARENT)
    return config


class ExperimentTunedHere(Experiment):
    """NNI's ``Experiment`` whose manager waits for its tuner to connect (:class:`._tuner.InProcessTuner`) instead of
    starting a tuner process; NNI's NAS experiments start their manager the same way."""

    # NNI's private method, overridden: its parameters are checked in _nni_internals
    def _start_nni_manager(self, port: int, debug: bool, run_mode: RunMode = RunMode.Background,
                           tuner_command_channel: str | None = None, tags: list[str] = []) -> None:  # noqa: B006
        super()._start_nni_manager(port, debug, run_mode, channel_url(port), tags)


def relay_command(relay_port: int, token_file: Path, manager_port: int) -> str:
    """The trial command: the relay, connecting back to ``relay_port`` with the token kept in ``token_file``.

    The command is public (NNI's web UI shows it to whoever reaches the manager's port, which listens on all
    interfaces), so it names the file, never the token.
    """
    return ' '.join(shlex.quote(part) for part in [
        sys.executable, '-m', RELAY_MODULE, '--port', str(relay_port), '--token-file', str(token_file),
        '--manager-port', str(manager_port)])


def write_token(token: str) -> Path:
    """A new file, readable and writable by this user only (mode 0600), holding ``token``; the caller deletes it."""
    handle, path = tempfile.mkstemp(prefix='nni-proxyless-relay-', suffix='.token')  # created with mode 0600
    with os.fdopen(handle, 'w') as file:
        file.write(token)
    return Path(path)
