"""The examples run end to end in their smoke modes, as CI runs them: subprocesses, exit codes, output files."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'


def _run(script: str, *args: str, folder: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run an example in ``folder`` with NNI's files and the latency cache kept there."""
    env = dict(os.environ, HOME=str(folder / 'home'), NNI_PROXYLESS_CACHE=str(folder / 'cache'))
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=folder, env=env, timeout=timeout,
                          capture_output=True, text=True)


@pytest.fixture(scope='module')
def searches(tmp_path_factory) -> dict[str, Path]:
    """Both search examples in smoke mode (run once for the module): the files they export."""
    folder = tmp_path_factory.mktemp('searches')
    legacy = _run('legacy_trainer.py', '--smoke', '--arch-path', 'digits_arch.json', folder=folder)
    assert legacy.returncode == 0, legacy.stderr[-3000:]
    cifar = _run('cifar10_search.py', '--fake-data', '--epochs', '1', '--hardware', 'flops', '--top-k', '2',
                 '--workers', '0', '--output', 'cifar10_top.json', folder=folder)
    assert cifar.returncode == 0, cifar.stderr[-3000:]
    return {'folder': folder, 'digits': folder / 'digits_arch.json', 'cifar10': folder / 'cifar10_top.json'}


@pytest.mark.parametrize('script, quick', [
    ('legacy_trainer.py', '--smoke'), ('cifar10_search.py', '--fake-data'), ('retrain.py', '--smoke')])
def test_every_example_has_help(script, quick, monkeypatch, capsys):
    """``--help`` exits 0 and shows the example's quick mode (run in-process: no second NNI import)."""
    monkeypatch.setattr(sys, 'argv', [script, '--help'])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(EXAMPLES / script), run_name='__main__')
    usage = capsys.readouterr().out
    assert exit_.value.code == 0 and usage.startswith('usage:') and quick in usage


def test_legacy_trainer_exports_one_digits_architecture(searches):
    """legacy_trainer.py --smoke writes one architecture: a value for each of the three cells."""
    arch = json.loads(searches['digits'].read_text())
    assert set(arch) == {'cell0', 'cell1', 'cell2'}
    assert set(arch.values()) <= {'conv3', 'conv5', 'sep3', 'skip'}


def test_cifar10_search_exports_top_k_with_probabilities_and_latencies(searches):
    """cifar10_search.py --fake-data writes the top-k, most probable first, each with a latency in the unit used."""
    data = json.loads(searches['cifar10'].read_text())
    rows = data['architectures']
    assert data['space'] == 'ProxylessNAS' and data['space_args'] == {'num_labels': 10, 'width_mult': 0.35}
    assert [row['rank'] for row in rows] == [1, 2] and rows[0]['arch'] != rows[1]['arch']
    assert rows[0]['probability'] >= rows[1]['probability'] > 0
    assert all(row['latency'] > 0 and row['latency_unit'] == 'MFLOPs' for row in rows)


def test_cifar10_search_names_the_missing_folder(tmp_path):
    """Without CIFAR-10 in --data-dir the search exits non-zero, naming the folder; nothing is downloaded."""
    missing = tmp_path / 'no-cifar-here'
    result = _run('cifar10_search.py', '--data-dir', str(missing), '--output', 'top.json', folder=tmp_path,
                  timeout=120)
    assert result.returncode != 0
    assert str(missing) in result.stderr and '--fake-data' in result.stderr
    assert not missing.exists() and not (tmp_path / 'top.json').exists()


@pytest.mark.parametrize('export, options', [
    ('digits', ['--space', 'legacy_trainer:DigitsSpace']),
    ('cifar10', ['--fake-data', '--rank', '2'])])
def test_retrain_trains_an_exported_architecture(searches, export, options):
    """retrain.py --smoke freezes an export (either format), trains it, and reports accuracy and CPU latency."""
    output = searches['folder'] / f'retrain_{export}.json'
    result = _run('retrain.py', str(searches[export]), '--smoke', '--output', str(output), *options,
                  folder=searches['folder'])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    expected = json.loads(searches[export].read_text())
    assert report['arch'] == (expected if export == 'digits' else expected['architectures'][1]['arch'])
    assert 0 <= report['test_accuracy'] <= 1 and report['latency_ms'] > 0
    assert 'test accuracy' in result.stdout
