"""NNI's own manager and web UI show a search that reports from the test process (nni_proxyless.webui).

These tests start real NNI managers (Node.js shipped with NNI) on free localhost ports, with experiments
in a temporary directory; the browser test drives headless Chromium through chromedriver's WebDriver HTTP
API with ``urllib`` (no selenium).
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from nni_proxyless.webui import WebUI, WebUIError, _experiment, _tuner

from webui_tools import (ARTIFACTS, CHROMEDRIVER, CHROMIUM, NNICTL, WebDriver, assert_nothing_left, child_processes,
                         experiments_root, forget_experiments, free_port, metric_records, nnictl_view,
                         related_processes, rest, trial_events, wait_for)  # noqa: F401  (experiments_root is a fixture)

INTERMEDIATE = [0.61, 0.72, 0.83]
FINAL = 0.9345


# --- a running search -----------------------------------------------------------------------------

class TestRunningSearch:
    """One web UI, three intermediate results and a final one, shared by the tests of this class."""

    @pytest.fixture(scope='class')
    def reported(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebUI, int]]:
        root = tmp_path_factory.mktemp('nni-experiments').resolve()
        port = free_port()
        ui = WebUI(port, experiment_dir=str(root), startup_timeout=60)
        with ui:
            for value in INTERMEDIATE:
                ui.report_intermediate({'default': value, 'expected_latency_ms': 12.1, 'entropy': 1.2})
            ui.report_final({'default': FINAL, 'argmax_latency_ms': 11.8})
            wait_for(lambda: len(metric_records(port)) == 4, 10, 'four metric records in NNI')
            yield ui, port
        forget_experiments(root)

    def test_rest_api_has_trial_and_metrics(self, reported: tuple[WebUI, int]) -> None:
        """NNI's REST API lists the relay trial as running, with the 3 intermediate and the final `default`."""
        ui, port = reported
        jobs = rest(port, 'trial-jobs')
        assert len(jobs) == 1 and jobs[0]['status'] == 'RUNNING'
        records = [r for r in metric_records(port) if r['trialJobId'] == jobs[0]['trialJobId']]
        periodical = sorted((r for r in records if r['type'] == 'PERIODICAL'), key=lambda r: r['sequence'])
        assert [r['data']['default'] for r in periodical] == INTERMEDIATE
        assert periodical[0]['data']['expected_latency_ms'] == 12.1
        assert [r['data'] for r in records if r['type'] == 'FINAL'] == [{'default': FINAL, 'argmax_latency_ms': 11.8}]
        assert rest(port, 'experiment')['id'] == ui.experiment_id

    def test_web_ui_renders_trial_and_metric(self, reported: tuple[WebUI, int], tmp_path: Path) -> None:
        """The web UI, rendered by headless Chromium, shows the trial and its final metric."""
        for binary in (CHROMIUM, CHROMEDRIVER):
            if not binary.exists():
                pytest.skip(f'{binary} is absent; install the Debian packages chromium and chromium-driver')
        ui, port = reported
        trial_id = rest(port, 'trial-jobs')[0]['trialJobId']
        browser = WebDriver(tmp_path / 'chromium-profile')
        try:
            browser.command('POST', '/url', {'url': f'{ui.url}/oview'})
            wait_for(lambda: browser.shows(trial_id, str(FINAL), ui.experiment_id), 30,
                      f'overview page to show experiment {ui.experiment_id}, trial {trial_id} and metric {FINAL}')
            browser.screenshot(ARTIFACTS / 'webui_overview.png')
            browser.command('POST', '/url', {'url': f'{ui.url}/detail'})
            wait_for(lambda: browser.shows(trial_id, f'{FINAL} (FINAL)'), 30,
                      f'trials detail page to show trial {trial_id} with final metric {FINAL}')
            browser.screenshot(ARTIFACTS / 'webui_trials_detail.png')
        finally:
            browser.quit()


# --- failures and cleanup -------------------------------------------------------------------------

def test_port_in_use_is_a_clear_error_and_starts_nothing(experiments_root: Path) -> None:
    """A busy port gives a WebUIError naming the port and how to pick another; no process is started."""
    children_before = child_processes()
    with socket.create_server(('127.0.0.1', 0)) as occupant:
        port = occupant.getsockname()[1]
        ui = WebUI(port, experiment_dir=str(experiments_root))
        with pytest.raises(WebUIError, match=rf'Port {port} is already in use.*WebUI\(port='), ui:
            pytest.fail('the body must not run')
    assert_nothing_left(ui, port, children_before)
    assert not ui.experiment_dir.exists()


class _SearchCrashed(Exception):
    pass


def test_exception_in_body_propagates_fails_trial_and_stops_everything(experiments_root: Path) -> None:
    """An exception in the ``with`` body propagates; the trial ends FAILED and nothing is left running."""
    children_before = child_processes()
    port = free_port()
    ui = WebUI(port, experiment_dir=str(experiments_root))
    with pytest.raises(_SearchCrashed), ui:
        ui.report_intermediate({'default': 0.5})
        assert child_processes() - children_before, 'the manager should be running inside the body'
        raise _SearchCrashed
    assert_nothing_left(ui, port, children_before)
    with pytest.raises(urllib.error.URLError):
        rest(port, 'check-status')
    assert trial_events(ui)[-1] == 'FAILED'
    with pytest.raises(WebUIError, match='not running'):
        ui.report_final({'default': 1.0})


def test_relay_timeout_names_the_log_and_stops_everything(experiments_root: Path) -> None:
    """If the relay does not connect within startup_timeout, the error names where to look; nothing is left."""
    children_before = child_processes()
    port = free_port()
    ui = WebUI(port, experiment_dir=str(experiments_root), startup_timeout=0.5)
    with pytest.raises(WebUIError, match=r'(?s)did not connect within 0.5 s.*(nnimanager\.log|trial\.stderr)'):
        ui.start()
    assert_nothing_left(ui, port, children_before)


def test_relay_that_dies_is_reported_with_its_stderr(experiments_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the relay trial dies before connecting, the error names its stderr file; nothing is left running."""
    monkeypatch.setattr(_experiment, 'RELAY_MODULE', 'nni_proxyless._no_such_relay')
    children_before = child_processes()
    port = free_port()
    ui = WebUI(port, experiment_dir=str(experiments_root))
    with pytest.raises(WebUIError, match=r'(?s)relay trial ended \(FAILED\).*trial\.stderr.*No module named'):
        ui.start()
    assert_nothing_left(ui, port, children_before)


def _tuner_connects_late(monkeypatch: pytest.MonkeyPatch, seconds: float) -> list[float]:
    """Delay the tuner's first connection by ``seconds`` (past NNI's 10 s); the delays still to come are returned."""
    connect, delays = _tuner.InProcessTuner.connect, [seconds]

    def late(tuner: _tuner.InProcessTuner) -> None:
        if delays:
            time.sleep(delays.pop())
        connect(tuner)
    monkeypatch.setattr(_tuner.InProcessTuner, 'connect', late)
    return delays


def test_manager_that_gave_up_on_a_late_tuner_is_started_again(experiments_root: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A tuner connecting 12 s after NNI's manager started (NNI allows 10 s) costs a restart of the manager, not the
    search: within startup_timeout the experiment runs, takes the reports and ends with its trial SUCCEEDED."""
    delays = _tuner_connects_late(monkeypatch, 12.0)
    children_before, port = child_processes(), free_port()
    with WebUI(port, experiment_dir=str(experiments_root), startup_timeout=60) as ui:
        ui.report_final({'default': FINAL})
        assert rest(port, 'check-status')['status'] == 'RUNNING'
        wait_for(lambda: [r['data'] for r in metric_records(port)] == [{'default': FINAL}], 10, 'the report')
    assert not delays
    assert 'Tuner did not connect in 10 seconds' in (ui.experiment_dir / 'log' / 'nnimanager.log').read_text()
    assert trial_events(ui)[-1] == 'SUCCEEDED'
    assert_nothing_left(ui, port, children_before)


def test_late_tuner_fails_when_startup_timeout_leaves_no_time(experiments_root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """startup_timeout bounds the start-up, restarts included: 8 s cannot wait for a tuner 12 s late."""
    _tuner_connects_late(monkeypatch, 12.0)
    children_before, port = child_processes(), free_port()
    ui = WebUI(port, experiment_dir=str(experiments_root), startup_timeout=8)
    with pytest.raises(WebUIError, match=r'gave up waiting for its tuner.*startup_timeout=8 s, no time was left'):
        ui.start()
    assert_nothing_left(ui, port, children_before)


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
    port = free_port()
    search = subprocess.Popen([sys.executable, '-c', _KILLED_SEARCH, str(port), str(experiments_root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert search.stdout is not None
        lines = iter(search.stdout.readline, '')
        experiment_id = next((line.split()[1] for line in lines if line.startswith('EXPERIMENT ')), None)
        assert experiment_id, 'the search process did not start its web UI'
        assert related_processes(experiment_id, port), 'the manager and relay should be running'
        time.sleep(1)
        assert search.poll() is None, f'the search process ended before it was killed: {search.stdout.read()}'
    finally:
        search.kill()
        search.wait(10)
    wait_for(lambda: not related_processes(experiment_id, port), 30, 'manager and relay to exit')
    stderr = next((experiments_root / experiment_id / 'environments').glob('*/trials/*/trial.stderr'))
    assert 'closed the connection without saying it was done' in stderr.read_text()


def test_stopped_experiment_is_listed_and_can_be_viewed_by_nnictl(experiments_root: Path) -> None:
    """After stop(), ``nnictl experiment list --all`` shows the experiment as STOPPED (NNI's status of every
    experiment whose manager no longer runs, as docs/webui.md says), and ``nnictl view`` reopens it."""
    port = free_port()
    with WebUI(port, experiment_dir=str(experiments_root), experiment_name='proxyless-nnictl-test') as ui:
        ui.report_final({'default': FINAL})
    listing = subprocess.run([str(NNICTL), 'experiment', 'list', '--all'], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    line = next((row for row in listing.splitlines() if f'Id: {ui.experiment_id}' in row), '')
    assert 'proxyless-nnictl-test' in line and 'STOPPED' in line, listing
    view_port = None
    try:
        view_port = nnictl_view(ui.experiment_id)
        jobs = wait_for(lambda: rest(view_port, 'trial-jobs'), 10, 'the viewed trial')
        assert [job['status'] for job in jobs] == ['SUCCEEDED']
        assert rest(view_port, 'check-status')['status'] == 'VIEWED'   # as docs/webui.md says
        assert [r['data'] for r in metric_records(view_port) if r['type'] == 'FINAL'] == [{'default': FINAL}]
    finally:
        subprocess.run([str(NNICTL), 'stop', ui.experiment_id], capture_output=True, timeout=60)
        psutil.wait_procs(related_processes(ui.experiment_id, port), timeout=10)
    assert not related_processes(ui.experiment_id, port)


def test_metrics_are_validated_before_sending() -> None:
    """Reports need a dict with a numeric 'default'; bad input fails fast, without a running manager."""
    ui = WebUI(free_port())
    with pytest.raises(ValueError, match="'default'"):
        ui.report_intermediate({'accuracy': 0.9})
    with pytest.raises(TypeError, match='must be a dict'):
        ui.report_final(0.9)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'default' must be a number"):
        ui.report_final({'default': 'high'})
    with pytest.raises(WebUIError, match='not running'):
        ui.report_intermediate({'default': 0.9})
