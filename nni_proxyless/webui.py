"""Show a search that runs in this process in NNI's own manager and web UI.

NNI 3.0 runs one-shot strategies in the user's process and starts no NNI manager, so ``nnictl`` and the
web UI show nothing. :class:`WebUI` starts a real NNI experiment (local training service) whose trial is a
small relay (``python -m nni_proxyless._webui_relay``). The search keeps running here and
sends its metrics to the relay over a localhost TCP connection; the relay hands them to NNI with
``nni.report_intermediate_result`` / ``nni.report_final_result``. The experiment is then an ordinary NNI
experiment: listed by ``nnictl experiment list``, reopened by ``nnictl view <id>``.

With ``retrain_top_k=k`` the experiment has ``k`` more trials, ``retrain top-1`` ... ``retrain top-k`` (NNI's
grid-search tuner hands out the trial names in order, as the trials' parameters): after the search,
:meth:`next_trial` ends the current relay trial and connects the next one, and the same calls report the
retraining of one exported architecture, so the web UI compares the retrained architectures side by side.

Why TCP rather than a file the relay tails: the connection doubles as the start-up handshake (the relay
is ready when it connects) and as a liveness signal both ways. When this process dies, however abruptly,
the kernel closes the socket and the relay stops the experiment and exits; when the relay dies, the next
report fails at once instead of writing to a file nobody reads.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
from nni.experiment import Experiment, ExperimentConfig, RunMode

__all__ = ['WebUI', 'WebUIError']

_logger = logging.getLogger('nni.proxyless.webui')

_RELAY_MODULE = 'nni_proxyless._webui_relay'
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent  # the relay's working directory: `-m` finds us
_ENDED = {'SUCCEEDED', 'FAILED', 'USER_CANCELED', 'SYS_CANCELED', 'EARLY_STOPPED'}
_ACK_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
SEARCH_TRIAL = 'search'


def retrain_trial(rank: int) -> str:
    """The name (NNI parameter ``trial``) of the trial that retrains the ``rank``-th exported architecture."""
    return f'retrain top-{rank}'


class WebUIError(RuntimeError):
    """The web UI could not be started, or the relay to it was lost."""


class WebUI:
    """An NNI experiment, with manager and web UI, that displays the metrics this process reports.

    Args:
        port: Port of NNI's manager and web UI; it must be free.
        experiment_name: Name shown by ``nnictl experiment list`` and the web UI.
        experiment_dir: Directory under which NNI keeps its experiments (NNI's
            ``experiment_working_directory``); ``None`` means NNI's default, ``~/nni-experiments``.
            The :attr:`experiment_dir` property is this experiment's own folder inside it.
        startup_timeout: Seconds :meth:`start` (and :meth:`next_trial`) wait for a relay trial to connect.
        retrain_top_k: After the search, retrain this many of the top architectures from scratch, each as a
            further trial of the experiment (``Proxyless`` does it; see :mod:`nni_proxyless.retrain_trials`).
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

    def __init__(self, port: int = 8080, *, experiment_name: str = 'proxyless',
                 experiment_dir: str | None = None, startup_timeout: float = 60, retrain_top_k: int = 0,
                 retrain_evaluator: Any = None) -> None:
        if not 0 < port < 65536:
            raise ValueError(f'port must be in 1..65535, got {port}')
        if startup_timeout <= 0:
            raise ValueError(f'startup_timeout must be positive, got {startup_timeout}')
        if isinstance(retrain_top_k, bool) or not isinstance(retrain_top_k, int) or retrain_top_k < 0:
            raise ValueError(f'retrain_top_k must be an integer >= 0, got {retrain_top_k!r}')
        self._port = port
        self._timeout = float(startup_timeout)
        self.retrain_top_k, self.retrain_evaluator = retrain_top_k, retrain_evaluator
        self._root = Path(experiment_dir or '~/nni-experiments').expanduser().resolve()
        trials = [SEARCH_TRIAL] + [retrain_trial(rank) for rank in range(1, retrain_top_k + 1)]
        self._experiment = Experiment(_base_config(experiment_name, self._root, trials))
        self._token = secrets.token_hex(16)
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._reader: Any = None
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
            WebUIError: If the port is in use, the manager fails, or the relay does not connect within
                ``startup_timeout`` seconds. Nothing is left running in that case.
        """
        if self._state != 'new':
            raise WebUIError(f'this WebUI was already started (state: {self._state})')
        _ensure_port_free(self._port)
        self._state = 'starting'
        atexit.register(self._teardown, True)
        try:
            self._listen()
            self._start_manager()
            self._wait_for_relay()
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
            if self._state != 'running' or self._conn is None:
                raise WebUIError(f'The web UI is not running (state: {self._state}); call start() first')
            self._finish_relay(False)
            self._conn = self._reader = None
            self._state = 'starting'
        self._wait_for_relay()
        self._state = 'running'
        _logger.info('NNI trial %r (%s) connected', self._trial_name, self._trial_id)
        return self._trial_name

    def log(self, text: str) -> None:
        """Write ``text`` to the current trial's log (its stdout, linked from the web UI's trial details).

        Raises:
            WebUIError: If the web UI is not running or the relay is gone.
        """
        self._send({'type': 'log', 'text': str(text)})

    def report_intermediate(self, metrics: dict[str, Any]) -> None:
        """Report an intermediate result (e.g. one epoch) to NNI.

        Args:
            metrics: Numbers (or strings) by name; ``metrics['default']`` is the number NNI plots.

        Raises:
            TypeError: If ``metrics`` is not a dict or holds something other than numbers and strings.
            ValueError: If ``metrics`` has no ``'default'``.
            WebUIError: If the web UI is not running or the relay is gone.
        """
        self._send({'type': 'intermediate', 'metrics': _clean_metrics(metrics)})

    def report_final(self, metrics: dict[str, Any]) -> None:
        """Report the final result of the search to NNI.

        Args:
            metrics: As for :meth:`report_intermediate`.

        Raises:
            TypeError, ValueError, WebUIError: As for :meth:`report_intermediate`.
        """
        self._send({'type': 'final', 'metrics': _clean_metrics(metrics)})

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

    def _listen(self) -> None:
        self._listener = socket.create_server(('127.0.0.1', 0))
        self._listener.settimeout(0.5)

    def _start_manager(self) -> None:
        assert self._listener is not None and self._experiment.config is not None
        relay_port = self._listener.getsockname()[1]
        self._experiment.config.trial_command = ' '.join(shlex.quote(part) for part in [
            sys.executable, '-m', _RELAY_MODULE, '--port', str(relay_port),
            '--token', self._token, '--manager-port', str(self._port)])
        try:
            with _stdin_withheld():
                self._experiment.start(self._port, run_mode=RunMode.Detach)  # our own atexit stops it
        except Exception as exc:
            raise WebUIError(f'NNI manager failed to start on port {self._port}: {exc}. '
                             + self._logs('nnimanager.log', 'nnictl_stderr.log')) from exc
        finally:
            self._manager = _find_manager(self.experiment_id)

    def _wait_for_relay(self) -> None:
        assert self._listener is not None
        deadline = time.monotonic() + self._timeout
        while True:
            self._check_startup()
            if time.monotonic() > deadline:
                raise WebUIError(f'The relay trial did not connect within {self._timeout:g} s '
                                 f'(startup_timeout). {self._where_to_look()}')
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            if self._handshake(conn, deadline):
                return

    def _handshake(self, conn: socket.socket, deadline: float) -> bool:
        conn.settimeout(max(deadline - time.monotonic(), 1.0))
        reader = conn.makefile('rb')
        try:
            hello = json.loads(reader.readline() or b'null')
        except (OSError, ValueError):
            hello = None
        if not isinstance(hello, dict) or not secrets.compare_digest(str(hello.get('token')), self._token):
            _logger.warning('Ignored a connection that did not present the relay token')
            reader.close()
            conn.close()
            return False
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn, self._reader = conn, reader
        self._trial_name, self._trial_id = str(hello.get('trial', SEARCH_TRIAL)), hello.get('trial_id')
        return True

    def _check_startup(self) -> None:
        if not _alive(self._manager):
            raise WebUIError('NNI manager exited during start-up. '
                             + self._logs('nnimanager.log', 'nnictl_stderr.log'))
        status = None
        with contextlib.suppress(Exception):  # a manager that does not answer is caught by the check above
            status = self._experiment.get_status()
        if status == 'ERROR':
            raise WebUIError(f'NNI experiment {self.experiment_id} failed during start-up. '
                             + self._logs('nnimanager.log', 'dispatcher.log'))
        trial = self._trial()
        if trial is not None and trial.status in _ENDED:
            raise WebUIError(f'The relay trial ended ({trial.status}) before connecting. {self._where_to_look()}')

    def _where_to_look(self) -> str:
        trial = self._trial()
        if trial is None:
            return 'NNI has not launched the trial yet. ' + self._logs('nnimanager.log', 'dispatcher.log')
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
            if self._state != 'running' or self._conn is None:
                raise WebUIError(f'The web UI is not running (state: {self._state}); call start() first')
            try:
                self._conn.settimeout(_ACK_TIMEOUT)
                self._conn.sendall(json.dumps(message).encode() + b'\n')
                reply = json.loads(self._reader.readline() or b'null')
            except (OSError, ValueError):
                reply = None
            if not isinstance(reply, dict) or not reply.get('ok'):
                detail = reply.get('error') if isinstance(reply, dict) else 'no reply'
                raise WebUIError(f'The relay trial did not accept the metrics ({detail}). {self._where_to_look()}')

    # --- shutdown -------------------------------------------------------------------------------

    def _teardown(self, failed: bool) -> None:
        """Stop relay, manager and their children; never raises."""
        atexit.unregister(self._teardown)
        with self._lock:
            self._state = 'stopped'
            if self._conn is not None:
                self._finish_relay(failed)
            if self._listener is not None:
                self._listener.close()  # a relay still starting up now fails to connect and exits
            leftovers = _family(self._manager)  # manager, tuner, relay: whatever survives the stop is killed
            if self._manager is None or _alive(self._manager):  # never started: stop() just ends NNI's logging
                self._stop_experiment()
            _kill_all(leftovers)

    def _finish_relay(self, failed: bool) -> None:
        assert self._conn is not None
        try:
            self._conn.settimeout(10)
            self._conn.sendall(json.dumps({'type': 'done', 'failed': failed}).encode() + b'\n')
            self._reader.read()  # returns at EOF: the relay has exited
        except OSError as exc:
            _logger.warning('Relay did not confirm the end of the search: %s', exc)
        finally:
            self._reader.close()
            self._conn.close()
        deadline = time.monotonic() + 10  # let the manager record SUCCEEDED/FAILED before it stops
        while time.monotonic() < deadline:
            trial = self._trial()
            if trial is None or trial.status in _ENDED:
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
            _kill_all(_family(self._manager))
            stopper.join(5)


def _base_config(name: str, root: Path, trials: list[str]) -> ExperimentConfig:
    config = ExperimentConfig('local')
    config.experiment_name = name
    config.experiment_working_directory = str(root)
    config.search_space = {'trial': {'_type': 'choice', '_value': trials}}  # each trial's name, in order
    config.tuner.name = 'GridSearch'
    config.trial_concurrency = 1
    config.max_trial_number = len(trials)
    config.trial_code_directory = str(_PACKAGE_PARENT)
    return config


def _ensure_port_free(port: int) -> None:
    """Bind the port the way NNI's manager (Node.js) will: all interfaces, IPv4 and IPv6, SO_REUSEADDR."""
    dualstack = socket.has_dualstack_ipv6()
    try:
        probe = socket.create_server(('', port), family=socket.AF_INET6 if dualstack else socket.AF_INET,
                                     dualstack_ipv6=dualstack)
    except OSError as exc:
        raise WebUIError(f'Port {port} is already in use ({exc.strerror}), so NNI\'s web UI cannot listen on it. '
                         f'Choose another port, e.g. WebUI(port={port + 1}), or stop what is using port {port}.'
                         ) from None
    probe.close()


@contextlib.contextmanager
def _stdin_withheld() -> Iterator[None]:
    """Give the processes started meanwhile /dev/null as standard input.

    NNI's launcher lets its manager (Node.js) inherit our stdin, and Node.js makes that shared pipe or
    terminal non-blocking: ``input()`` or ``pdb`` in this process would fail while the web UI runs.
    """
    try:
        saved = os.dup(0)
    except OSError:  # no stdin to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(devnull)


def _clean_metrics(metrics: dict[str, Any]) -> dict[str, float | str]:
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


def _find_manager(experiment_id: str) -> psutil.Process | None:
    """The NNI manager (node) process this process started for ``experiment_id``."""
    for child in psutil.Process().children():
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if '--experiment-id' in cmdline and experiment_id in cmdline:
            return child
    return None


def _alive(process: psutil.Process | None) -> bool:
    try:
        return process is not None and process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _family(process: psutil.Process | None) -> list[psutil.Process]:
    """``process`` and all its descendants."""
    if process is None:
        return []
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def _kill_all(processes: list[psutil.Process]) -> None:
    alive = [p for p in processes if p.is_running()]  # zombies included: waiting reaps them
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(alive, timeout=5)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
