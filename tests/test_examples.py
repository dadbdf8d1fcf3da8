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


def test_retrain_trains_an_exported_digits_architecture(searches):
    """retrain.py freezes the exported digits architecture and trains it for 2 epochs: far above chance (0.1) on the
    397 test digits, with a measured CPU latency."""
    output = searches['folder'] / 'retrain_digits.json'
    result = _run('retrain.py', str(searches['digits']), '--space', 'legacy_trainer:DigitsSpace', '--epochs', '2',
                  '--output', str(output), folder=searches['folder'])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report['arch'] == json.loads(searches['digits'].read_text()) and report['epochs'] == 2
    assert report['test_accuracy'] > 0.5 and report['latency_ms'] > 0
    assert round(report['test_accuracy'] * 397, 6) % 1 == 0          # a fraction of the 397 test digits
    assert f"test accuracy {report['test_accuracy']:.4f}" in result.stdout


def test_retrain_takes_a_rank_of_a_top_k_file(searches):
    """retrain.py --rank 2 on the CIFAR-10 search's top-k file trains that rank's architecture of the named space."""
    output = searches['folder'] / 'retrain_cifar10.json'
    result = _run('retrain.py', str(searches['cifar10']), '--fake-data', '--rank', '2', '--smoke', '--output',
                  str(output), folder=searches['folder'])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    top = json.loads(searches['cifar10'].read_text())
    assert report['arch'] == top['architectures'][1]['arch'] != top['architectures'][0]['arch']
    assert report['space'] == top['space'] and report['space_args'] == top['space_args']
    assert round(report['test_accuracy'] * 256, 6) % 1 == 0 and report['latency_ms'] > 0  # over 256 fake images
