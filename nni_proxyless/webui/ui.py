"""The :class:`WebUI`: a real NNI experiment, with manager and web UI, showing what this process reports.

It starts the experiment (local training service) whose tuner runs in this process (:mod:`._tuner`) and whose
trials are relays (:mod:`._relay`), waits for the relay trial to connect to this process (:mod:`._connection`),
sends it the metrics to report, and stops everything it started when done, failed or interrupted
(:mod:`._processes`). One class: the lifetime of one experiment, whose parts (start-up, trials, reports,
shutdown) share its state.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import shutil
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
from nni.experiment import RunMode

from .. import _checks
from .._nni_internals import rest_get
from . import _experiment, _processes, _protocol as protocol
from ._connection import RelayLink
from ._tuner import InProcessTuner

__all__ = ['WebUI', 'WebUIError']

_logger = logging.getLogger('nni.proxyless.webui')

_STOP_TIMEOUT = 30.0


class WebUIError(RuntimeError):
    """The web UI could not be started, or the relay to it was lost."""


class _TunerLate(WebUIError):
    """NNI's manager gave up waiting for its tuner (it allows 10 seconds) before the tuner connected."""


class WebUI:
    """An NNI experiment, with manager and web UI, that displays the metrics this process reports.

    Args:
        port: Port of NNI's manager and web UI; it must be free.
        experiment_name: Name shown by ``nnictl experiment list`` and the web UI; ``None`` (the default): named
            after the model space and the strategy when ``Proxyless`` starts it (else ``'proxyless'``).
        experiment_dir: Directory under which NNI keeps its experiments (NNI's
            ``experiment_working_directory``); ``None`` means NNI's default, ``~/nni-experiments``.
            The :attr:`experiment_dir` property is this experiment's own folder inside it.
        startup_timeout: Seconds :meth:`start` waits for the experiment to come up (NNI's manager, its tuner and
            the relay trial), and :meth:`next_trial` for each further relay trial to connect. NNI's manager gives
            its tuner 10 seconds to connect; when that was too short, :meth:`start` starts the manager again
            (the same experiment) as long as ``startup_timeout`` leaves time.
        retrain_top_k: After the search, retrain this many of the top architectures from scratch, each as a
            further trial of the experiment (``Proxyless`` does it; see :mod:`nni_proxyless.webui.retrain`).
            Default 0.
        retrain_evaluator: The evaluator that retrains them; ``None`` (default) rebuilds the search's
            evaluator from its constructor arguments (same trainer settings and data, fresh state).

    Raises:
        ValueError: If ``port``, ``startup_timeout`` or ``retrain_top_k`` is out of range.

    Example:
        >>> with WebUI(port=8080) as ui:                                      # doctest: +SKIP
        ...     for epoch in range(3):
        ...         ui.report_intermediate({'default': 0.9, 'expected_latency_ms': 12.1})
        ...     ui.report_final({'default': 0.93, 'argmax_latency_ms': 11.8})
    """

    def __init__(self, port: int = 8080, *, experiment_name: str | None = None,
                 experiment_dir: str | None = None, startup_timeout: float = 60, retrain_top_k: int = 0,
                 retrain_evaluator: Any = None) -> None:
        self._port = _checks.port('port', port)
        self._timeout = _checks.number('startup_timeout', startup_timeout, positive=True, unit='seconds')
        self.retrain_top_k = _checks.integer('retrain_top_k', retrain_top_k, low=0)
        self.retrain_evaluator = retrain_evaluator
        self._root = Path(experiment_dir or '~/nni-experiments').expanduser().resolve()
        self._experiment = _experiment.ExperimentTunedHere(
            _experiment.experiment_config(experiment_name or 'proxyless', self._root, self.retrain_top_k))
        self._tuner: InProcessTuner | None = None
        self.named = experiment_name is not None  # whether the user chose the name
        self._link = RelayLink()
        self._token_file: Path | None = None
        self._lock = threading.Lock()
        self._manager: psutil.Process | None = None
        self._state = 'new'  # -> 'running' -> 'stopped'
        self._trial_name: str | None = None  # the connected relay trial's name and NNI id
        self._trial_id: str | None = None
        self._ended: set[str] = set()  # NNI ids of the relay trials already ended

    @property
    def experiment_id(self) -> str:
        """NNI's ID of the experiment (known before :meth:`start`)."""
        return self._experiment.id

    @property
    def experiment_name(self) -> str:
        """The name ``nnictl experiment list`` and the web UI show; it can be changed until :meth:`start`."""
        assert self._experiment.config is not None
        return self._experiment.config.experiment_name

    @experiment_name.setter
    def experiment_name(self, name: str) -> None:
        if self._state != 'new':
            raise WebUIError(f'The experiment is already started (state: {self._state}); name it before start()')
        assert self._experiment.config is not None
        self._experiment.config.experiment_name = name
        self.named = True

    @property
    def port(self) -> int:
        """Port of NNI's manager and web UI."""
        return self._port

    @property
    def url(self) -> str:
        """Address of the web UI."""
        return f'http://localhost:{self._port}'

    @property
    def experiment_dir(self) -> Path:
        """NNI's folder of this experiment (logs, database, trial output); plots can be saved here."""
        return self._root / self.experiment_id

    def __enter__(self) -> WebUI:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(failed=exc_type is not None)  # an exception in the body propagates

    def start(self) -> WebUI:
        """Start NNI's manager and the relay trial, and wait until the relay has connected.

        Returns:
            ``self``.

        Raises:
            WebUIError: If the port is in use, the manager fails, or the experiment is not up (manager, tuner and
                relay connected) within ``startup_timeout`` seconds. Nothing is left running in that case.
        """
        if self._state != 'new':
            raise WebUIError(f'this WebUI was already started (state: {self._state})')
        busy = _processes.port_in_use(self._port)
        if busy is not None:
            raise WebUIError(f'Port {self._port} is already in use ({busy}), so NNI\'s web UI cannot listen on it. '
                             f'Choose another port, e.g. WebUI(port={self._port + 1}), or stop what is using port '
                             f'{self._port}.')
        self._state = 'starting'
        atexit.register(self._teardown, True)
        try:
            self._link.listen()
            self._token_file = _experiment.write_token(self._link.token)
            self._start_experiment(time.monotonic() + self._timeout)
        except BaseException:
            self._teardown(True)
            raise
        self._state = 'running'
        _logger.info('NNI web UI of experiment %s: %s (its files: %s)', self.experiment_id, self.url,
                     self.experiment_dir)
        return self

    @property
    def trial_name(self) -> str | None:
        """The name of the connected trial: ``'search'``, ``'retrain top-1'``, ... (``None`` before start)."""
        return self._trial_name

    def next_trial(self) -> str:
        """End the current trial as SUCCEEDED and wait for the experiment's next trial to connect.

        Returns:
            The new trial's name, e.g. ``'retrain top-1'``.

        Raises:
            WebUIError: If the web UI is not running, or no further trial connects within ``startup_timeout``.
        """
        with self._lock:
            if self._state != 'running' or not self._link.connected:
                raise WebUIError(f'The web UI is not running (state: {self._state}); call start() first')
            self._finish_relay(False)
            self._state = 'starting'
        self._wait_for_relay(time.monotonic() + self._timeout)
        self._state = 'running'
        _logger.info('NNI trial %r (%s) connected', self._trial_name, self._trial_id)
        return self._trial_name

    def log(self, text: str) -> None:
        """Write ``text`` to the current trial's log (its stdout, linked from the web UI's trial details).

        Raises:
            WebUIError: If the web UI is not running or the relay is gone.
        """
        self._send({'type': protocol.LOG, 'text': str(text)})

    def report_intermediate(self, metrics: dict[str, Any]) -> None:
        """Report an intermediate result (e.g. one epoch) to NNI.

        Args:
            metrics: Numbers (or strings) by name; ``metrics['default']`` is the number NNI plots.

        Raises:
            TypeError: If ``metrics`` is not a dict or holds something other than numbers and strings.
            ValueError: If ``metrics`` has no ``'default'``.
            WebUIError: If the web UI is not running or the relay is gone.
        """
        self._send({'type': protocol.INTERMEDIATE, 'metrics': protocol.clean_metrics(metrics)})

    def report_final(self, metrics: dict[str, Any]) -> None:
        """Report the final result of the search to NNI.

        Args:
            metrics: As for :meth:`report_intermediate`.

        Raises:
            TypeError, ValueError, WebUIError: As for :meth:`report_intermediate`.
        """
        self._send({'type': protocol.FINAL, 'metrics': protocol.clean_metrics(metrics)})

    def stop(self, *, failed: bool = False) -> None:
        """End the relay trial (as FAILED if ``failed``), stop NNI's manager and everything it started.

        Safe to call more than once. The experiment stays on disk; ``nnictl view <id>`` reopens it.

        Args:
            failed: Mark the trial as failed (done automatically when a ``with`` body raises).
        """
        if self._state in ('running', 'starting'):
            self._teardown(failed)
            _logger.info('Stopped NNI experiment %s; reopen it with: nnictl view %s --port %d',
                         self.experiment_id, self.experiment_id, self._port)

    # --- start-up -------------------------------------------------------------------------------

    def _start_experiment(self, deadline: float) -> None:
        """Start NNI's manager and its tuner, and wait for the relay trial to connect; start the manager again (the
        same experiment, without the failed start's database) while it gives up on its tuner and time is left."""
        while True:
            self._start_manager()
            try:
                self._wait_for_relay(deadline)
                return
            except _TunerLate as late:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WebUIError(f'{late} Within startup_timeout={self._timeout:g} s, no time was left to start '
                                     'it again.') from None
                _logger.warning('%s Starting it again (%.0f s of startup_timeout left).', late, left)
                self._stop_manager()
                shutil.rmtree(self.experiment_dir / 'db', ignore_errors=True)

    def _start_manager(self) -> None:
        assert self._experiment.config is not None and self._token_file is not None
        self._experiment.config.trial_command = _experiment.relay_command(self._link.port, self._token_file,
                                                                          self._port)
        try:
            with _processes.stdin_withheld():
                self._experiment.start(self._port, run_mode=RunMode.Detach)  # our own atexit stops it
            self._tuner = InProcessTuner(self._port)
            self._tuner.connect()
        except Exception as exc:
            raise WebUIError(f'NNI manager failed to start on port {self._port}: {exc}. '
                             + self._logs('nnimanager.log', 'nnictl_stderr.log')) from exc
        finally:
            self._manager = _processes.find_manager(self.experiment_id)

    def _wait_for_relay(self, deadline: float) -> None:
        while True:
            self._check_startup()
            if time.monotonic() > deadline:
                raise WebUIError(f'The relay trial did not connect within {self._timeout:g} s '
                                 f'(startup_timeout). {self._where_to_look()}')
            hello = self._link.accept(deadline - time.monotonic())
            if hello is not None:
                self._trial_name = str(hello.get('trial', protocol.SEARCH_TRIAL))
                self._trial_id = hello.get('trial_id')
                return

    def _check_startup(self) -> None:
        if not _processes.alive(self._manager):
            raise WebUIError('NNI manager exited during start-up. '
                             + self._logs('nnimanager.log', 'nnictl_stderr.log'))
        status: dict[str, Any] = {}
        with contextlib.suppress(Exception):  # a manager that does not answer is caught by the check above
            status = rest_get(self._port, '/check-status')
        if status.get('status') == 'ERROR':
            errors = ' '.join(str(error) for error in status.get('errors') or [])
            if 'Tuner did not connect' in errors:
                raise _TunerLate('NNI manager gave up waiting for its tuner, which runs in this process ("Tuner did '
                                 'not connect in 10 seconds"; this process was too busy to connect in time).')
            raise WebUIError(f'NNI experiment {self.experiment_id} failed during start-up ({errors}). '
                             + self._logs('nnimanager.log'))
        trial = self._trial()
        if trial is not None and trial.status in _experiment.ENDED:
            raise WebUIError(f'The relay trial ended ({trial.status}) before connecting. {self._where_to_look()}')

    def _where_to_look(self) -> str:
        trial = self._trial()
        if trial is None:
            return 'NNI has not launched the trial yet. ' + self._logs('nnimanager.log')
        stderr = Path(trial.logPath) / 'trial.stderr'
        tail = ''.join(stderr.read_text(errors='replace').splitlines(True)[-5:]) if stderr.is_file() else ''
        return f'Trial stderr: {stderr}' + (f'; it ends with:\n{tail}' if tail else '')

    def _trial(self) -> Any:
        """The current relay trial as NNI's REST API describes it: the connected one, else the newest one not
        yet ended; None when there is none yet or the manager does not answer."""
        try:
            jobs = self._experiment.list_trial_jobs()
        except Exception:  # a manager that does not answer is reported by the callers' other checks
            return None
        if self._trial_id is not None:
            return next((job for job in jobs if job.trialJobId == self._trial_id), None)
        waiting = [job for job in jobs if job.trialJobId not in self._ended]
        return max(waiting, key=lambda job: job.sequenceId or 0, default=None)

    def _logs(self, *names: str) -> str:
        logs = [str(self.experiment_dir / 'log' / name) for name in names]
        logs = [log for log in logs if Path(log).is_file()]
        return f'See {" and ".join(logs)}' if logs else f'No log was written in {self.experiment_dir / "log"}'

    # --- reporting ------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if self._state != 'running' or not self._link.connected:
                raise WebUIError(f'The web UI is not running (state: {self._state}); call start() first')
            problem = self._link.send(message)
            if problem is not None:
                raise WebUIError(f'The relay trial did not accept the metrics ({problem}). {self._where_to_look()}')

    # --- shutdown -------------------------------------------------------------------------------

    def _teardown(self, failed: bool) -> None:
        """Stop relay, manager and their children; never raises."""
        atexit.unregister(self._teardown)
        with self._lock:
            self._state = 'stopped'
            if self._link.connected:
                self._end_trial_count()
                self._finish_relay(failed)
            self._link.close()
            if self._token_file is not None:
                self._token_file.unlink(missing_ok=True)
            self._stop_manager()

    def _stop_manager(self) -> None:
        """Stop NNI's manager (it ends the tuner's thread) and kill what survives the stop; disconnect the tuner."""
        leftovers = _processes.family(self._manager)  # manager, relay: what survives the stop is killed
        if self._manager is None or _processes.alive(self._manager):  # never started: just end NNI's logging
            self._stop_experiment()
        _processes.kill_all(leftovers)
        if self._tuner is not None:
            self._tuner.close()
            self._tuner = None

    def _end_trial_count(self) -> None:
        """Lower NNI's trial limit to the trials run, so that the manager reads DONE before it stops (see
        :func:`._experiment.experiment_config`)."""
        with contextlib.suppress(Exception):  # a manager that does not answer is stopped anyway
            self._experiment.update_max_trial_number(len(self._ended) + 1)

    def _finish_relay(self, failed: bool) -> None:
        self._link.finish(failed)
        deadline = time.monotonic() + 10  # let the manager record SUCCEEDED/FAILED before it stops
        while time.monotonic() < deadline:
            trial = self._trial()
            if trial is None or trial.status in _experiment.ENDED:
                break
            time.sleep(0.25)
        if self._trial_id is not None:
            self._ended.add(self._trial_id)
        self._trial_id = None

    def _stop_experiment(self) -> None:
        stopper = threading.Thread(target=self._experiment.stop, name='nni-webui-stop', daemon=True)
        stopper.start()
        stopper.join(_STOP_TIMEOUT)
        if stopper.is_alive():
            _logger.warning('NNI manager did not stop within %g s; killing it', _STOP_TIMEOUT)
            _processes.kill_all(_processes.family(self._manager))
            stopper.join(5)
