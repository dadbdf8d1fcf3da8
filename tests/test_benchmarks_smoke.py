"""The benchmarks' quick mode runs end to end and renders the markdown page and its plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ['## Headline', '## Cost per epoch', '## Peak memory', '## Scaling with the number of candidates',
            '## Value choices: hub MobileNetV3', '## Cells: hub DARTS',
            '## Search quality: planted optimum', '## Search quality against the ground truth',
            '## Deploying to several budgets from one search (value truth)',
            '## Search quality: accuracy under a latency target',
            '## REINFORCE against binary-gate gradients', '## Latency tables', '## Search quality: short budgets',
            '## BatchNorm recalibration', '## Reproducing']
PLOTS = ['cost', 'memory', 'scaling', 'convergence', 'latency_target', 'latency_accuracy', 'modes', 'truth_search_cell',
         'truth_search_value', 'deploy_front']


def test_quick_benchmarks_write_markdown_and_plots(tmp_path):
    """`run_all.py --quick` (about 5 minutes alone, more beside other tests) succeeds; every section, table and plot
    of the page is produced."""
    markdown, plots, results = tmp_path / 'benchmarks.md', tmp_path / 'plots', tmp_path / 'results'
    done = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'run_all.py'), '--quick', '--results',
                           str(results), '--markdown', str(markdown), '--plots', str(plots)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]
    text = markdown.read_text()
    assert [section for section in SECTIONS if section not in text] == []
    assert text.count('|---|') >= 10  # every table rendered
    assert [name for name in PLOTS if not (plots / f'{name}.png').stat().st_size > 10_000] == []
    run = json.loads((results / 'run.json').read_text())
    assert run['quick'] and all(script['error'] is None for script in run['scripts'].values())
    # the ground-truth comparison covers both committed truths, the value one under a FLOPs target too
    assert '### Digits cell space (125 architectures)' in text and '### Digits value-choice space (117' in text
    assert text.count('| ours default |') == 3 and '**Against the ground truths**' in text  # two tables, the target
    truth = json.loads((results / 'truth_search.json').read_text())
    assert set(truth['checked']) == {'cell', 'value'} and 'constrained' in truth['checked']['value']['1']
    # one search, several budgets: three budgets, each with the fronts and the per-budget searches scored
    front = json.loads((results / 'deploy_front.json').read_text())
    cells = front['budgets']['1']
    assert len(cells) == 3 and all(set(cell['methods']) == set(front['methods']) for cell in cells)
    assert front['methods'] == ['front, 1 candidate', 'front, 5 candidates',
                                'front, budgets not given to the search, 1 candidate', 'one search per budget']


def test_gpu_benchmark_quick_runs_on_the_cpu(tmp_path):
    """`gpu.py --quick` runs on the CPU (fp32, bf16, and fp16 with a gradient scaler), writes its JSON, and the
    page it redraws has the GPU section with a table."""
    out, markdown = tmp_path / 'gpu.json', tmp_path / 'benchmarks.md'
    done = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'gpu.py'), '--quick', '--out', str(out),
                           '--markdown', str(markdown), '--plots', str(tmp_path / 'plots')],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    runs = result['groups'][0]['runs']
    assert result['quick'] and result['skipped'] == []
    assert [r for r in runs if r['error'] is not None or not r['step_ms'] > 0] == []
    assert {r['precision'] for r in runs} == {'32-true', 'bf16-mixed', '16-mixed'}
    assert result['latency'][0]['archs'] == 3 and len(result['latency'][0]['measured_ms']) == 3
    text = markdown.read_text()
    assert '## GPU and mixed precision' in text and '| ours: search, arch every 1 |' in text


def test_ground_truth_extended_with_more_seeds_equals_one_built_with_them(tmp_path, monkeypatch):
    """`ground_truth.py --extend TABLE --seeds N` (here in 2 worker processes) trains only the seeds TABLE lacks, and
    its table equals one built with N seeds in one run; a table of another protocol is refused."""
    monkeypatch.syspath_prepend(str(ROOT / 'benchmarks'))
    import _harness
    import ground_truth
    monkeypatch.setattr(_harness, 'quiet_lightning', lambda: None)  # run here, the script must leave logging alone
    monkeypatch.setattr(_harness.torch, 'set_num_threads', lambda threads: None)

    def build(name: str, *extra: str) -> dict:
        ground_truth.main(['--space', 'value', '--archs', '2', '--epochs', '1', '--short-epochs', '1', *extra,
                           '--json', str(tmp_path / name)])
        return json.loads((tmp_path / name).read_text())

    one, two = build('one.json', '--seeds', '1'), build('two.json', '--seeds', '2')
    extended = build('extended.json', '--seeds', '2', '--extend', str(tmp_path / 'one.json'), '--workers', '2')
    assert [len(row['test']) for row in extended['architectures']] == [2, 2]
    assert extended['architectures'] == two['architectures']
    assert extended['extends']['seeds'] == 1 and extended['extends']['command'] == one['command']
    with pytest.raises(SystemExit, match='another protocol'):
        build('refused.json', '--seeds', '2', '--extend', str(tmp_path / 'one.json'), '--short-epochs', '2')
