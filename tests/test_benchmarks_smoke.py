"""The benchmarks' quick mode runs end to end and renders the markdown page and its plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ['## Headline', '## Cost per epoch', '## Peak memory', '## Scaling with the number of candidates',
            '## Search quality: planted optimum', '## Search quality against the ground truth',
            '## Search quality: accuracy under a latency target',
            '## REINFORCE against binary-gate gradients', '## Latency tables', '## Reproducing']
PLOTS = ['cost', 'memory', 'scaling', 'convergence', 'latency_target', 'latency_accuracy', 'modes', 'truth_search']


def test_quick_benchmarks_write_markdown_and_plots(tmp_path):
    """`run_all.py --quick` (about a minute) succeeds; every section, table and plot of the page is produced."""
    markdown, plots, results = tmp_path / 'benchmarks.md', tmp_path / 'plots', tmp_path / 'results'
    done = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'run_all.py'), '--quick', '--results',
                           str(results), '--markdown', str(markdown), '--plots', str(plots)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    text = markdown.read_text()
    assert [section for section in SECTIONS if section not in text] == []
    assert text.count('|---|') >= 10  # every table rendered
    assert [name for name in PLOTS if not (plots / f'{name}.png').stat().st_size > 10_000] == []
    run = json.loads((results / 'run.json').read_text())
    assert run['quick'] and all(script['error'] is None for script in run['scripts'].values())
