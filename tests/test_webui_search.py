"""A real search shown in NNI's manager and web UI: REST API, nnictl, headless Chromium, plots, same export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nni_proxyless import Proxyless
from nni_proxyless.webui import WebUI

from conftest import ConvSpace, digits_evaluator, run_search
from webui_tools import (ARTIFACTS, CHROMEDRIVER, CHROMIUM, WebDriver, experiment_listing, experiments_root,
                         free_port, reopened, wait_for)  # noqa: F401  (experiments_root is a fixture)

FIGURES = {'default', 'entropy', 'expected_latency_MFLOPs', 'argmax_latency_MFLOPs'}


def _search(workdir: Path, web_ui=None):
    torch.manual_seed(0)
    strategy = Proxyless(seed=0, arch_update_every=1, applied_hardware='flops', dummy_input=(1, 1, 8, 8),
                         ref_latency=0.1, web_ui=web_ui)
    exp = run_search(ConvSpace(), strategy, digits_evaluator(epochs=3), workdir)
    return strategy, [(dict(a), a.probability) for a in exp.export_top_models(top_k=3, formatter='dict')]


def _show_in_browser(url: str, trial_id: str, final: float, profile: Path) -> None:
    browser = WebDriver(profile)
    try:
        browser.command('POST', '/url', {'url': f'{url}/oview'})
        wait_for(lambda: browser.shows(trial_id, f'{final:.6f}'), 30, f'overview with trial {trial_id}, {final}')
        browser.screenshot(ARTIFACTS / 'webui_search_overview.png')
    finally:
        browser.quit()


def _show_trials_in_browser(url: str, trial_ids: list[str], profile: Path) -> None:
    browser = WebDriver(profile)
    try:
        browser.command('POST', '/url', {'url': f'{url}/detail'})
        wait_for(lambda: browser.shows(*trial_ids), 30, f'trials detail page with trials {trial_ids}')
        browser.screenshot(ARTIFACTS / 'webui_retrain_trials.png')
    finally:
        browser.quit()


def test_search_in_web_ui_then_nnictl_view(experiments_root, tmp_path):
    """The search is a trial with a report per epoch and a final one; nnictl view reopens it; plots are saved."""
    ui = WebUI(free_port(), experiment_dir=str(experiments_root), experiment_name='proxyless-search-test')
    strategy, exported = _search(tmp_path / 'with-ui', web_ui=ui)
    assert {p.name for p in (ui.experiment_dir / 'plots').glob('*.png')} == {
        'probabilities.png', 'curves.png', 'top_k.png'}
    assert ui.experiment_id in experiment_listing()
    with reopened(ui.experiment_id) as (port, (job,), records):
        assert job['status'] == 'SUCCEEDED'
        periodical = [r['data'] for r in records if r['type'] == 'PERIODICAL']
        final = [r['data'] for r in records if r['type'] == 'FINAL']
        assert len(periodical) == 3 and all(FIGURES <= set(r) for r in periodical) and len(final) == 1
        assert final[0]['default'] == pytest.approx(strategy.oneshot_module.reports[-1]['default'])
        if CHROMIUM.exists() and CHROMEDRIVER.exists():
            _show_in_browser(f'http://localhost:{port}', job['trialJobId'], final[0]['default'], tmp_path / 'profile')
    _, without_ui = _search(tmp_path / 'without-ui')
    assert exported == without_ui


def test_port_in_use_fails_before_training(experiments_root, tmp_path):
    """A busy port stops the search before any training, naming the port."""
    import socket
    with socket.create_server(('', 0)) as busy:
        port = busy.getsockname()[1]
        ui = WebUI(port, experiment_dir=str(experiments_root))
        with pytest.raises(RuntimeError, match=f'Port {port} is already in use'):
            _search(tmp_path, web_ui=ui)


def test_top_k_retrained_as_further_trials(experiments_root, tmp_path):
    """With retrain_top_k=2 the experiment has the search and two retrain trials, in order, each with a report
    per epoch; each retrain trial's final result is its own architecture's, trained from fresh weights."""
    ui = WebUI(free_port(), experiment_dir=str(experiments_root), retrain_top_k=2)
    strategy, exported = _search(tmp_path, web_ui=ui)
    assert [r['trial'] for r in strategy.retrained] == ['retrain top-1', 'retrain top-2']
    assert [dict(r['architecture']) for r in strategy.retrained] == [arch for arch, _ in exported[:2]]
    with reopened(ui.experiment_id) as (port, jobs, records):
        names = [json.loads(job['hyperParameters'][0])['parameters']['trial'] for job in jobs]
        assert names == ['search', 'retrain top-1', 'retrain top-2']
        assert all(job['status'] == 'SUCCEEDED' for job in jobs)
        for job, retrained, (_, probability) in zip(jobs[1:], strategy.retrained, exported):
            mine = [r for r in records if r['trialJobId'] == job['trialJobId']]
            periodical = [r['data'] for r in mine if r['type'] == 'PERIODICAL']
            final = [r['data'] for r in mine if r['type'] == 'FINAL']
            assert len(periodical) == 3 and final == [pytest.approx(retrained['final'])]
            assert all(m['probability'] == pytest.approx(probability) for m in periodical + final)
        if CHROMIUM.exists() and CHROMEDRIVER.exists():
            _show_trials_in_browser(f'http://localhost:{port}', [job['trialJobId'] for job in jobs],
                                    tmp_path / 'profile')


def test_fresh_subnet_has_new_weights(tmp_path):
    """The retrained subnet has the exported architecture's modules but not the supernet's trained weights."""
    from nni_proxyless.webui.retrain import fresh_subnet
    torch.manual_seed(0)
    strategy = Proxyless(seed=0)
    space = ConvSpace()
    exp = run_search(space, strategy, digits_evaluator(epochs=1), tmp_path)
    arch = exp.export_top_models(top_k=1, formatter='dict')[0]
    inherited = exp.export_top_models(top_k=1, formatter='instance')[0].state_dict()
    fresh = fresh_subnet(space, arch).state_dict()
    assert fresh.keys() == inherited.keys()
    assert not torch.equal(fresh['stem.weight'], inherited['stem.weight'])
