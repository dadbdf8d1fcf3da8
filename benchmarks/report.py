"""Render docs/benchmarks.md and its PNG plots from the JSON results of the benchmark scripts.

Every number in the markdown comes from the JSON files ``run_all.py`` wrote (``--results``); nothing is
typed in by hand. Run: ``python benchmarks/report.py [--results DIR] [--markdown FILE] [--plots DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import _plots as plots
import _report_defaults as defaults
import _report_front as front
import _report_gpu as gpu_section
import _report_quality as quality
import _report_sections as sections
import _report_spaces as spaces
import _report_speed as speed
import _report_truth as truth

HERE = Path(__file__).resolve().parent


def _load(results: Path) -> dict[str, dict | None]:
    loaded = {}
    for name in ('run', 'cost', 'memory', 'scaling', 'modes', 'planted_optimum', 'latency_target',
                 'latency_accuracy', 'short_budget', 'batchnorm_recalibration', 'gpu', 'truth_search',
                 'mobilenet_space', 'darts_space', 'deploy_front'):
        path = results / f'{name}.json'
        loaded[name] = json.loads(path.read_text()) if path.exists() else None
    loaded['planted'] = loaded.pop('planted_optimum')
    return loaded


def _figures(r: dict, folder: Path) -> dict[str, Path]:
    """Draw every figure whose results exist; name -> file."""
    drawn = {}
    if r['cost']:
        drawn['cost'] = plots.ratio_bars(r['cost']['by_batch_size'], 'ratios', 'Epoch time / frozen subnet epoch '
                                         'time, hub ProxylessNAS', 'ratio (log)', folder / 'cost.png',
                                         {'target 1.1x': 1.1, 'target 1.4x': 1.4})
    if r['memory']:
        drawn['memory'] = plots.memory_bars(r['memory']['by_batch_size'], folder / 'memory.png')
    if r['scaling']:
        drawn['scaling'] = plots.scaling_lines(r['scaling'], folder / 'scaling.png')
    if r['planted']:
        drawn['convergence'] = plots.convergence(r['planted'], folder / 'convergence.png')
    if r['latency_target']:
        drawn['latency_target'] = plots.latency_target(r['latency_target'], folder / 'latency_target.png')
    if r['latency_accuracy']:
        drawn['latency_accuracy'] = plots.latency_scatter(r['latency_accuracy'], folder / 'latency_accuracy.png')
    if r['modes'] and r['planted']:
        drawn['modes'] = plots.modes(r['modes'], r['planted'], folder / 'modes.png')
    for key, truth in ((r['truth_search'] or {}).get('truths') or {}).items():
        drawn[f'truth_search_{key}'] = plots.truth_ranks(truth, r['truth_search']['seeds'],
                                                         f'Exports against the {key} ground truth',
                                                         folder / f'truth_search_{key}.png')
    if r['deploy_front']:
        drawn['deploy_front'] = plots.front_picks(r['deploy_front'], folder / 'deploy_front.png')
    return drawn


def render(results: Path, markdown: Path, plots_folder: Path) -> str:
    """Write the figures into ``plots_folder`` and the markdown into ``markdown``; returns the markdown."""
    r = _load(Path(results))
    figures = _figures(r, Path(plots_folder))
    links = {name: os.path.relpath(path, Path(markdown).parent) for name, path in figures.items()}
    parts = [sections.intro(r), sections.headline(r, (*spaces.headlines(r), *defaults.headlines(r),
                                                      truth.headline(r))),
             speed.cost(r, links), speed.memory(r, links), speed.scaling(r, links), spaces.mobilenet(r, links),
             spaces.darts(r, links), quality.planted(r, links),
             truth.truth(r, links), front.front(r, links), quality.latency_target(r, links), quality.modes(r, links),
             quality.latency_tables(r, links), defaults.short_budget(r, links), defaults.batchnorm(r, links),
             gpu_section.gpu(r, links), sections.reproduce(r)]
    text = '\n\n'.join(part for part in parts if part).rstrip() + '\n'
    Path(markdown).parent.mkdir(parents=True, exist_ok=True)
    Path(markdown).write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--results', default=str(HERE / 'results'))
    parser.add_argument('--markdown', default=str(HERE.parent / 'docs' / 'benchmarks.md'))
    parser.add_argument('--plots', default=str(HERE.parent / 'docs' / 'benchmarks'))
    args = parser.parse_args(argv)
    render(Path(args.results), Path(args.markdown), Path(args.plots))


if __name__ == '__main__':
    main()
