"""The web UI asked for the way NNI documents it: ``NasExperiment(...).run(port=p)`` or ``start(p)``; what the
manager shows. (The port is read from ``NasExperiment.start``'s frame: ``tests/test_nni_internals.py`` checks that
read for every way of calling.)"""

from __future__ import annotations

import logging
import socket
import stat
from pathlib import Path

import pytest
import torch
from nni.nas.experiment import NasExperiment
from nni.tools.nnictl.config_utils import Experiments

from nni_proxyless import Proxyless
from nni_proxyless.webui import WebUI, WebUIError
from nni_proxyless.webui._from_experiment import WEB_UI_ENV

from conftest import ConvSpace, digits_evaluator
from webui_tools import (assert_nothing_left, child_processes, experiment_listing, experiments_root,  # noqa: F401
                         free_port, reopened, rest, trial_events)


def _search(workdir: Path, *args, method: str = 'run', **kwargs) -> tuple[NasExperiment, Proxyless]:
    """A search started by ``exp.run(*args, **kwargs)`` (or ``exp.start(...)``), then stopped."""
    torch.manual_seed(0)
    strategy = Proxyless(seed=0, arch_update_every=1)
    exp = NasExperiment(ConvSpace(), digits_evaluator(epochs=2), strategy)
    exp.config.experiment_working_directory = str(workdir)
    getattr(exp, method)(*args, **kwargs)
    exp.stop()
    return exp, strategy


def _exports(exp: NasExperiment) -> list[tuple[dict, float]]:
    return [(dict(a), a.probability) for a in exp.export_top_models(top_k=3, formatter='dict')]


def test_run_with_port_shows_the_search_in_nni(experiments_root):
    """run(port=p): NNI's manager lists the search trial with a report per epoch and the final one, nnictl lists
    the experiment under the space's and strategy's name, and the exports equal those of run() without a port."""
    exp, strategy = _search(experiments_root, port=free_port())
    ui = strategy.web_ui
    assert ui is not None and ui.experiment_dir.parent == experiments_root
    listing = experiment_listing()
    rows = {row for row in listing.splitlines() if ui.experiment_id in row or exp.id in row}
    assert len(rows) == 2 and all('ConvSpace / Proxyless' in row for row in rows), listing
    with reopened(ui.experiment_id) as (_, (job,), records):
        assert job['status'] == 'SUCCEEDED'
        assert [r['type'] for r in records].count('PERIODICAL') == 2
        final = [r['data'] for r in records if r['type'] == 'FINAL']
        assert final == [pytest.approx(strategy.oneshot_module.reports[-1])]
    plain, plain_strategy = _search(experiments_root)
    assert plain_strategy.web_ui is None
    assert _exports(exp) == _exports(plain)


def test_start_with_port_shows_the_search_on_that_port(experiments_root):
    """start(p), the port positional: the search is shown on p, as with run(port=p), and its trial succeeds."""
    port = free_port()
    exp, strategy = _search(experiments_root, port, method='start')
    ui = strategy.web_ui
    assert ui is not None and ui.port == port and ui.experiment_dir.parent == experiments_root
    assert trial_events(ui)[-1] == 'SUCCEEDED'


def test_run_with_port_8080_is_a_port_given_not_nni_default(experiments_root, monkeypatch, caplog):
    """run(port=8080), NNI's default number written by the caller, asks for the web UI (turned off here, so 8080
    need not be free: the log names the port); run() without a port asks for none."""
    monkeypatch.setenv(WEB_UI_ENV, 'off')
    with caplog.at_level(logging.INFO, logger='nni.proxyless.webui'):
        _search(experiments_root, port=8080)
        asked = [r.getMessage() for r in caplog.records if 'given to the experiment' in r.getMessage()]
        assert asked == [f'Port 8080 given to the experiment, but no web UI: {WEB_UI_ENV}=off']
        caplog.clear()
        _search(experiments_root)
        assert not [r for r in caplog.records if 'given to the experiment' in r.getMessage()]


def test_run_with_port_in_use_is_a_clear_error_and_leaves_nothing(experiments_root):
    """A busy port given to run() stops the search before training, naming the port; nothing is left running."""
    children_before = child_processes()
    with socket.create_server(('', 0)) as busy:
        port = busy.getsockname()[1]
        strategy = Proxyless(seed=0)
        exp = NasExperiment(ConvSpace(), digits_evaluator(epochs=1), strategy)
        exp.config.experiment_working_directory = str(experiments_root)
        with pytest.raises(WebUIError, match=f'Port {port} is already in use'):
            exp.run(port=port)
        exp.stop()
    assert not strategy.oneshot_module.reports  # no epoch ran
    assert_nothing_left(strategy.web_ui, port, children_before)


def test_port_is_ignored_when_the_switch_is_off(experiments_root, monkeypatch):
    """NNI_PROXYLESS_WEB_UI=off: run(port=p) starts no manager (p is in use, and nothing complains)."""
    monkeypatch.setenv(WEB_UI_ENV, 'off')
    with socket.create_server(('', 0)) as busy:
        exp, strategy = _search(experiments_root, port=busy.getsockname()[1])
    assert strategy.web_ui is None and len(_exports(exp)) == 3


def test_status_reads_running_while_the_search_runs(experiments_root):
    """NNI's status is RUNNING while the search trial runs (not NO_MORE_TRIAL, which it read before)."""
    port = free_port()
    with WebUI(port, experiment_dir=str(experiments_root)) as ui:
        ui.report_intermediate({'default': 0.5})
        assert rest(port, 'check-status')['status'] == 'RUNNING'
        assert rest(port, 'experiment')['params']['maxTrialNumber'] == 2  # one more than the trials to run


def test_relay_token_is_not_in_the_trial_command(experiments_root):
    """The trial command (shown by NNI's web UI) names a token file readable by this user only, not the token."""
    port = free_port()
    with WebUI(port, experiment_dir=str(experiments_root)) as ui:
        command = rest(port, 'experiment')['params']['trialCommand']
        token = ui._link.token
        token_file = Path(command.split('--token-file ')[1].split()[0])
        assert token not in command and token_file.read_text() == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert not token_file.exists()


def test_unnamed_experiment_is_listed_under_space_and_strategy(tmp_path):
    """Without a name in the config, NNI's list shows the run as '<Space> / Proxyless'; a user's name stays."""
    exp, _ = _search(tmp_path)
    named = NasExperiment(ConvSpace(), digits_evaluator(epochs=1), Proxyless(seed=0))
    named.config.experiment_working_directory = str(tmp_path)
    named.config.experiment_name = 'mine'
    named.run()
    named.stop()
    manifest = Experiments()
    try:
        entries = manifest.get_all_experiments()
        assert entries[exp.id]['experimentName'] == 'ConvSpace / Proxyless'
        assert entries[named.id]['experimentName'] == 'mine'
    finally:
        manifest.remove_experiment(exp.id)
        manifest.remove_experiment(named.id)
