"""NNI's own manager and web UI show a search that reports from the test process (nni_proxyless.webui).

These tests start real NNI managers (Node.js shipped with NNI) on free localhost ports, with experiments
in a temporary directory; the browser test drives headless Chromium through chromedriver's WebDriver HTTP
API with ``urllib`` (no selenium).
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
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

from nni_proxyless import webui
from nni_proxyless.webui import WebUI, WebUIError

NNICTL = Path(sys.executable).parent / 'nnictl'
CHROMIUM = Path('/usr/bin/chromium')
CHROMEDRIVER = Path('/usr/bin/chromedriver')
ARTIFACTS = Path(__file__).resolve().parent.parent / 'artifacts'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--window-size=1920,1080']
INTERMEDIATE = [0.61, 0.72, 0.83]
FINAL = 0.9345


# --- helpers ------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _http(method: str, url: str, body: Any = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


def _rest(port: int, api: str) -> Any:
    return _http('GET', f'http://127.0.0.1:{port}/api/v1/nni/{api}')


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.3)


def _metrics(port: int) -> list[dict[str, Any]]:
    """NNI's metric records, with ``data`` decoded (the REST API stores it JSON-encoded twice)."""
    records = _rest(port, 'metric-data')
    for record in records:
        data = json.loads(record['data'])
        record['data'] = json.loads(data) if isinstance(data, str) else data
    return records


def _trial_events(ui: WebUI) -> list[str]:
    """The relay trial's status changes as recorded in the experiment's database, oldest first."""
    with contextlib.closing(sqlite3.connect(ui.experiment_dir / 'db' / 'nni.sqlite')) as db:
        return [event for (event,) in db.execute('SELECT event FROM TrialJobEvent ORDER BY timestamp, rowid')]


def _readable_cmdline(process: psutil.Process) -> str:
    """The command line, with the tuner's base64 ``--exp_params`` (which holds the trial command) decoded."""
    args = process.info['cmdline'] or []
    decoded = []
    for flag, value in itertools.pairwise(args):
        if flag == '--exp_params':
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                decoded.append(base64.b64decode(value).decode())
    return ' '.join(args + decoded)


def _related_processes(experiment_id: str, port: int) -> list[psutil.Process]:
    """Live processes of this web UI: manager (its argv names the experiment), tuner or relay (name the port)."""
    return [process for process in psutil.process_iter(['cmdline'])
            if experiment_id in (cmdline := _readable_cmdline(process)) or f'--manager-port {port}' in cmdline]


def _assert_nothing_left(ui: WebUI, port: int, children_before: set[int]) -> None:
    new_children = {p.pid for p in psutil.Process().children(recursive=True)} - children_before
    assert not new_children, f'child processes left running: {new_children}'
    assert not _related_processes(ui.experiment_id, port), 'processes left running'


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.fixture
def experiments_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary NNI experiments directory; its experiments are dropped from NNI's list afterwards."""
    root = tmp_path_factory.mktemp('nni-experiments').resolve()
    yield root
    _forget_experiments(root)


def _forget_experiments(root: Path) -> None:
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


# --- a running search -----------------------------------------------------------------------------

class _WebDriver:
    """Just enough of the W3C WebDriver protocol, spoken to chromedriver with urllib."""

    def __init__(self, user_data_dir: Path) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen([str(CHROMEDRIVER), f'--port={self.port}'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f'http://127.0.0.1:{self.port}'
        options = {'binary': str(CHROMIUM), 'args': [*CHROMIUM_FLAGS, f'--user-data-dir={user_data_dir}']}
        capabilities = {'alwaysMatch': {'browserName': 'chrome', 'goog:chromeOptions': options}}
        try:
            _wait_for(self._ready, 20, 'chromedriver')
            reply = _http('POST', f'{self.base}/session', {'capabilities': capabilities}, timeout=60)
            self.session = reply['value']['sessionId']
        except BaseException:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def _ready(self) -> bool:
        try:
            return bool(_http('GET', f'{self.base}/status', timeout=2)['value']['ready'])
        except (OSError, ValueError):
            return False

    def command(self, method: str, path: str, body: Any = None) -> Any:
        return _http(method, f'{self.base}/session/{self.session}{path}', body)['value']

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


class TestRunningSearch:
    """One web UI, three intermediate results and a final one, shared by the tests of this class."""

    @pytest.fixture(scope='class')
    def reported(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebUI, int]]:
        root = tmp_path_factory.mktemp('nni-experiments').resolve()
        port = _free_port()
        ui = WebUI(port, experiment_dir=str(root), startup_timeout=60)
        with ui:
            for value in INTERMEDIATE:
                ui.report_intermediate({'default': value, 'expected_latency_ms': 12.1, 'entropy': 1.2})
            ui.report_final({'default': FINAL, 'argmax_latency_ms': 11.8})
            _wait_for(lambda: len(_metrics(port)) == 4, 10, 'four metric records in NNI')
            yield ui, port
        _forget_experiments(root)

    def test_rest_api_has_trial_and_metrics(self, reported: tuple[WebUI, int]) -> None:
        """NNI's REST API lists the relay trial as running, with the 3 intermediate and the final `default`."""
        ui, port = reported
        jobs = _rest(port, 'trial-jobs')
        assert len(jobs) == 1 and jobs[0]['status'] == 'RUNNING'
        records = [r for r in _metrics(port) if r['trialJobId'] == jobs[0]['trialJobId']]
        periodical = sorted((r for r in records if r['type'] == 'PERIODICAL'), key=lambda r: r['sequence'])
        assert [r['data']['default'] for r in periodical] == INTERMEDIATE
        assert periodical[0]['data']['expected_latency_ms'] == 12.1
        assert [r['data'] for r in records if r['type'] == 'FINAL'] == [{'default': FINAL, 'argmax_latency_ms': 11.8}]
        assert _rest(port, 'experiment')['id'] == ui.experiment_id

    def test_web_ui_renders_trial_and_metric(self, reported: tuple[WebUI, int], tmp_path: Path) -> None:
        """The web UI, rendered by headless Chromium, shows the trial and its final metric."""
        for binary in (CHROMIUM, CHROMEDRIVER):
            if not binary.exists():
                pytest.skip(f'{binary} is absent; install the Debian packages chromium and chromium-driver')
        ui, port = reported
        trial_id = _rest(port, 'trial-jobs')[0]['trialJobId']
        browser = _WebDriver(tmp_path / 'chromium-profile')
        try:
            browser.command('POST', '/url', {'url': f'{ui.url}/oview'})
            _wait_for(lambda: browser.shows(trial_id, str(FINAL), ui.experiment_id), 30,
                      f'overview page to show experiment {ui.experiment_id}, trial {trial_id} and metric {FINAL}')
            browser.screenshot(ARTIFACTS / 'webui_overview.png')
            browser.command('POST', '/url', {'url': f'{ui.url}/detail'})
            _wait_for(lambda: browser.shows(trial_id, f'{FINAL} (FINAL)'), 30,
                      f'trials detail page to show trial {trial_id} with final metric {FINAL}')
            browser.screenshot(ARTIFACTS / 'webui_trials_detail.png')
        finally:
            browser.quit()


# --- failures and cleanup -------------------------------------------------------------------------

def test_port_in_use_is_a_clear_error_and_starts_nothing(experiments_root: Path) -> None:
    """A busy port gives a WebUIError naming the port and how to pick another; no process is started."""
    children_before = _children()
    with socket.create_server(('127.0.0.1', 0)) as occupant:
        port = occupant.getsockname()[1]
        ui = WebUI(port, experiment_dir=str(experiments_root))
        with pytest.raises(WebUIError, match=rf'Port {port} is already in use.*WebUI\(port='), ui:
            pytest.fail('the body must not run')
    _assert_nothing_left(ui, port, children_before)
    assert not ui.experiment_dir.exists()


class _SearchCrashed(Exception):
    pass


def test_exception_in_body_propagates_fails_trial_and_stops_everything(experiments_root: Path) -> None:
    """An exception in the ``with`` body propagates; the trial ends FAILED and nothing is left running."""
    children_before = _children()
    port = _free_port()
    ui = WebUI(port, experiment_dir=str(experiments_root))
    with pytest.raises(_SearchCrashed), ui:
        ui.report_intermediate({'default': 0.5})
        assert _children() - children_before, 'the manager should be running inside the body'
        raise _SearchCrashed
    _assert_nothing_left(ui, port, children_before)
    with pytest.raises(urllib.error.URLError):
        _rest(port, 'check-status')
    assert _trial_events(ui)[-1] == 'FAILED'
    with pytest.raises(WebUIError, match='not running'):
        ui.report_final({'default': 1.0})


def test_relay_timeout_names_the_log_and_stops_everything(experiments_root: Path) -> None:
    """If the relay does not connect within startup_timeout, the error names where to look; nothing is left."""
    children_before = _children()
    port = _free_port()
    ui = WebUI(port, experiment_dir=str(experiments_root), startup_timeout=0.5)
    with pytest.raises(WebUIError, match=r'(?s)did not connect within 0.5 s.*(nnimanager\.log|trial\.stderr)'):
        ui.start()
    _assert_nothing_left(ui, port, children_before)


def test_relay_that_dies_is_reported_with_its_stderr(experiments_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the relay trial dies before connecting, the error names its stderr file; nothing is left running."""
    monkeypatch.setattr(webui, '_RELAY_MODULE', 'nni_proxyless._no_such_relay')
    children_before = _children()
    port = _free_port()
    ui = WebUI(port, experiment_dir=str(experiments_root))
    with pytest.raises(WebUIError, match=r'(?s)relay trial ended \(FAILED\).*trial\.stderr.*No module named'):
        ui.start()
    _assert_nothing_left(ui, port, children_before)


_KILLED_SEARCH = """
import sys
from nni_proxyless.webui import WebUI
ui = WebUI(int(sys.argv[1]), experiment_dir=sys.argv[2]).start()
ui.report_intermediate({'default': 0.5})
print('EXPERIMENT', ui.experiment_id, flush=True)
sys.stdin.read()  # blocks: NNI's Node.js manager must not have made our stdin non-blocking
print('stdin returned', flush=True)
"""


def test_relay_stops_manager_and_exits_when_the_search_process_is_killed(experiments_root: Path) -> None:
    """If the search process is SIGKILLed (no cleanup runs), the relay stops NNI's manager and exits."""
    port = _free_port()
    search = subprocess.Popen([sys.executable, '-c', _KILLED_SEARCH, str(port), str(experiments_root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert search.stdout is not None
        lines = iter(search.stdout.readline, '')
        experiment_id = next((line.split()[1] for line in lines if line.startswith('EXPERIMENT ')), None)
        assert experiment_id, 'the search process did not start its web UI'
        assert _related_processes(experiment_id, port), 'the manager and relay should be running'
        time.sleep(1)
        assert search.poll() is None, f'the search process ended before it was killed: {search.stdout.read()}'
    finally:
        search.kill()
        search.wait(10)
    _wait_for(lambda: not _related_processes(experiment_id, port), 30, 'manager and relay to exit')
    stderr = next((experiments_root / experiment_id / 'environments').glob('*/trials/*/trial.stderr'))
    assert 'closed the connection without saying it was done' in stderr.read_text()


def test_stopped_experiment_is_listed_and_can_be_viewed_by_nnictl(experiments_root: Path) -> None:
    """After stop(), ``nnictl experiment list --all`` shows the experiment and ``nnictl view`` reopens it."""
    port = _free_port()
    with WebUI(port, experiment_dir=str(experiments_root), experiment_name='proxyless-nnictl-test') as ui:
        ui.report_final({'default': FINAL})
    listing = subprocess.run([str(NNICTL), 'experiment', 'list', '--all'], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    line = next((row for row in listing.splitlines() if f'Id: {ui.experiment_id}' in row), '')
    assert 'proxyless-nnictl-test' in line and 'STOPPED' in line, listing
    view_port = _free_port()
    try:
        subprocess.run([str(NNICTL), 'view', ui.experiment_id, '--port', str(view_port)],
                       capture_output=True, text=True, timeout=60, check=True)
        jobs = _wait_for(lambda: _rest(view_port, 'trial-jobs'), 10, 'the viewed trial')
        assert [job['status'] for job in jobs] == ['SUCCEEDED']
        assert [r['data'] for r in _metrics(view_port) if r['type'] == 'FINAL'] == [{'default': FINAL}]
    finally:
        subprocess.run([str(NNICTL), 'stop', ui.experiment_id], capture_output=True, timeout=60)
        psutil.wait_procs(_related_processes(ui.experiment_id, port), timeout=10)
    assert not _related_processes(ui.experiment_id, port)


def test_metrics_are_validated_before_sending() -> None:
    """Reports need a dict with a numeric 'default'; bad input fails fast, without a running manager."""
    ui = WebUI(_free_port())
    with pytest.raises(ValueError, match="'default'"):
        ui.report_intermediate({'accuracy': 0.9})
    with pytest.raises(TypeError, match='must be a dict'):
        ui.report_final(0.9)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'default' must be a number"):
        ui.report_final({'default': 'high'})
    with pytest.raises(WebUIError, match='not running'):
        ui.report_intermediate({'default': 0.9})
