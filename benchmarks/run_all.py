"""Run every benchmark, then write docs/benchmarks.md and its plots (``make bench``).

The scripts run one after another in this process (the timings must not share the two cores with each other;
``memory.py`` runs its own child processes, two at a time, while nothing else is measured). Each writes its
JSON into ``--results`` (default ``benchmarks/results/``); ``report.py`` then renders the markdown and the PNG
plots from those files. ``--quick`` runs every script's smoke mode (about a minute) and, unless told
otherwise, writes everything under a temporary folder instead of the docs.

Run: ``python benchmarks/run_all.py`` (full, about 2 hours 30 minutes on 2 cores: the MobileNetV3 and DARTS space
benchmarks about 50 minutes of them (MobileNetV3 about 29 with its 128x128 timing, DARTS about 22),
``truth_search.py`` (two truths, three budgets, five seeds) about 40; then
``deploy_front.py``, 10 minutes alone with ``--workers 2``, about 20 at its default of one worker) or
``python benchmarks/run_all.py --quick --results DIR --markdown DIR/benchmarks.md --plots DIR``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Timing-sensitive scripts first; the quality scripts time nothing.
SCRIPTS = ['latency_accuracy', 'cost', 'scaling', 'modes', 'batchnorm_recalibration', 'memory', 'mobilenet_space',
           'darts_space', 'planted_optimum', 'latency_target', 'short_budget', 'truth_search',
           'deploy_front']


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help="every script's smoke mode")
    parser.add_argument('--results', help='folder for the JSON results (default benchmarks/results)')
    parser.add_argument('--markdown', help='markdown file to write (default docs/benchmarks.md)')
    parser.add_argument('--plots', help='folder for the PNG plots (default docs/benchmarks)')
    parser.add_argument('--only', nargs='+', choices=SCRIPTS, default=SCRIPTS, help='run only these scripts')
    parser.add_argument('--report-only', action='store_true', help='render from existing results, run nothing')
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix='nni-proxyless-bench-')) if args.quick else None
    docs = HERE.parent / 'docs'
    args.results = Path(args.results or (scratch / 'results' if scratch else HERE / 'results'))
    args.markdown = Path(args.markdown or (scratch / 'benchmarks.md' if scratch else docs / 'benchmarks.md'))
    args.plots = Path(args.plots or (scratch / 'plots' if scratch else docs / 'benchmarks'))
    return args


def run_script(name: str, results: Path, quick: bool) -> dict:
    """Run one script's ``main`` with ``--json`` (and ``--quick``); its wall time and whether it failed."""
    argv = ['--json', str(results / f'{name}.json')] + (['--quick'] if quick else [])
    started = time.perf_counter()
    try:
        importlib.import_module(name).main(argv)
        error = None
    except Exception:  # one failing script must not lose the others' figures
        error = traceback.format_exc()
        print(error, file=sys.stderr)
    return {'seconds': round(time.perf_counter() - started, 1), 'error': error}


def _run_scripts(args: argparse.Namespace) -> dict:
    started, load = time.perf_counter(), os.getloadavg()[0]
    scripts = {name: run_script(name, args.results, args.quick) for name in args.only}
    return {'quick': args.quick, 'load_average_start': round(load, 2), 'load_average_end': round(os.getloadavg()[0], 2),
            'scripts': scripts, 'total_seconds': round(time.perf_counter() - started, 1),
            'command': 'python benchmarks/run_all.py' + (' --quick' if args.quick else '')}


def _record(run_path: Path, args: argparse.Namespace, summary: dict) -> None:
    """Write run.json; a partial run (``--only``) updates its scripts in the previous record instead."""
    if set(args.only) != set(SCRIPTS) and run_path.exists():
        previous = json.loads(run_path.read_text())
        previous['scripts'].update(summary['scripts'])
        previous.setdefault('partial_reruns', []).append({k: v for k, v in summary.items() if k != 'scripts'}
                                                         | {'only': args.only})
        summary = previous
    run_path.write_text(json.dumps(summary, indent=2) + '\n')


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    run_path = args.results / 'run.json'
    if not args.report_only:
        _record(run_path, args, _run_scripts(args))
    import report
    report.render(args.results, args.markdown, args.plots)
    print(f'Wrote {args.markdown} and plots in {args.plots} (results in {args.results}).')
    failed = [name for name, run in json.loads(run_path.read_text())['scripts'].items() if run['error']]
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
