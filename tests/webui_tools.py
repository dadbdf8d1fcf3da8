"""What the web UI tests share: free ports, NNI's REST API, NNI's processes, experiments in a temporary folder,
and just enough WebDriver to drive headless Chromium with ``urllib`` (no selenium).
"""
from __future__ import annotations

import base64
import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from nni.tools.nnictl.config_utils import Experiments

from nni_proxyless.webui import WebUI

NNICTL = Path(sys.executable).parent / 'nnictl'
CHROMIUM = Path('/usr/bin/chromium')
CHROMEDRIVER = Path('/usr/bin/chromedriver')
ARTIFACTS = Path(__file__).resolve().parent.parent / 'artifacts'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--window-size=1920,1080']


# --- helpers ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def http(method: str, url: str, body: Any = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


def rest(port: int, api: str) -> Any:
    return http('GET', f'http://127.0.0.1:{port}/api/v1/nni/{api}')


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.3)


def metric_records(port: int) -> list[dict[str, Any]]:
    """NNI's metric records, with ``data`` decoded (the REST API stores it JSON-encoded twice)."""
    records = rest(port, 'metric-data')
    for record in records:
        data = json.loads(record['data'])
        record['data'] = json.loads(data) if isinstance(data, str) else data
    return records


def experiment_listing() -> str:
    """What ``nnictl experiment list --all`` prints."""
    return subprocess.run([str(NNICTL), 'experiment', 'list', '--all'], capture_output=True, text=True, timeout=60,
                          check=True).stdout


def nnictl_view(experiment_id: str) -> int:
    """``nnictl view`` a stopped experiment on a free port, as a user does; the port. One more try on a failure:
    ``nnictl`` exits 1 when NNI's manager is not up within its own wait (3 tries a second apart), which a machine
    busy with the other test process can exceed; the failure message holds both tries' output."""
    outputs = []
    for _ in range(2):
        port = free_port()
        done = subprocess.run([str(NNICTL), 'view', experiment_id, '--port', str(port)], capture_output=True,
                              text=True, timeout=60)
        if done.returncode == 0:
            return port
        outputs.append(f'exit {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}')
        subprocess.run([str(NNICTL), 'stop', experiment_id], capture_output=True, timeout=60)
        time.sleep(2)
    raise AssertionError(f'nnictl view {experiment_id} failed twice:\n' + '\n'.join(outputs))


@contextlib.contextmanager
def reopened(experiment_id: str) -> Iterator[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]]:
    """``nnictl view`` a finished experiment on a free port; yields the port, its trial jobs (in order) and their
    metric records; stops it afterwards."""
    port = nnictl_view(experiment_id)
    try:
        jobs = wait_for(lambda: rest(port, 'trial-jobs'), 10, 'the trials')
        yield port, sorted(jobs, key=lambda job: job['sequenceId']), metric_records(port)
    finally:
        subprocess.run([str(NNICTL), 'stop', experiment_id], capture_output=True, timeout=60)


def trial_events(ui: WebUI) -> list[str]:
    """The relay trial's status changes as recorded in the experiment's database, oldest first."""
    with contextlib.closing(sqlite3.connect(ui.experiment_dir / 'db' / 'nni.sqlite')) as db:
        return [event for (event,) in db.execute('SELECT event FROM TrialJobEvent ORDER BY timestamp, rowid')]


def related_processes(experiment_id: str, port: int) -> list[psutil.Process]:
    """Live processes of this web UI: the manager (its argv names the experiment), relays (they name the port)."""
    related = []
    for process in psutil.process_iter(['cmdline']):
        cmdline = ' '.join(process.info['cmdline'] or [])
        if experiment_id in cmdline or f'--manager-port {port}' in cmdline:
            related.append(process)
    return related


def assert_nothing_left(ui: WebUI, port: int, children_before: set[int]) -> None:
    new_children = {p.pid for p in psutil.Process().children(recursive=True)} - children_before
    assert not new_children, f'child processes left running: {new_children}'
    assert not related_processes(ui.experiment_id, port), 'processes left running'


def child_processes() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.fixture
def experiments_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary NNI experiments directory; its experiments are dropped from NNI's list afterwards."""
    root = tmp_path_factory.mktemp('nni-experiments').resolve()
    yield root
    forget_experiments(root)


def forget_experiments(root: Path) -> None:
    """Drop the experiments kept under ``root`` from NNI's list (~/nni-experiments/.experiment).

    A safety net also ends any NNI manager of theirs that a failed test left running.
    """
    manifest = Experiments()
    for experiment_id, info in list(manifest.get_all_experiments().items()):
        if isinstance(info, dict) and Path(str(info.get('logDir', ''))).resolve() == root:
            manifest.remove_experiment(experiment_id)
    ids = {path.name for path in root.iterdir() if path.is_dir()}
    strays = [p for p in psutil.process_iter(['cmdline']) if ids & set(p.info['cmdline'] or [])]
    for process in strays:
        with contextlib.suppress(psutil.Error):
            process.kill()


class WebDriver:
    """Just enough of the W3C WebDriver protocol, spoken to chromedriver with urllib."""

    def __init__(self, user_data_dir: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([str(CHROMEDRIVER), f'--port={self.port}'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f'http://127.0.0.1:{self.port}'
        options = {'binary': str(CHROMIUM), 'args': [*CHROMIUM_FLAGS, f'--user-data-dir={user_data_dir}']}
        capabilities = {'alwaysMatch': {'browserName': 'chrome', 'goog:chromeOptions': options}}
        try:
            wait_for(self._ready, 20, 'chromedriver')
            reply = http('POST', f'{self.base}/session', {'capabilities': capabilities}, timeout=60)
            self.session = reply['value']['sessionId']
        except BaseException:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def _ready(self) -> bool:
        try:
            return bool(http('GET', f'{self.base}/status', timeout=2)['value']['ready'])
        except (OSError, ValueError):
            return False

    def command(self, method: str, path: str, body: Any = None) -> Any:
        return http(method, f'{self.base}/session/{self.session}{path}', body)['value']

    def shows(self, *needles: str) -> bool:
        """Whether the rendered page's text contains all ``needles`` (the React app renders asynchronously)."""
        text = self.command('POST', '/execute/sync', {'script': 'return document.body.innerText;', 'args': []})
        return all(needle in text for needle in needles)

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.command('GET', '/screenshot')))

    def quit(self) -> None:
        try:
            self.command('DELETE', '')
        finally:
            self.proc.terminate()
            self.proc.wait(10)
