"""Search quality against two ground truths: how good is each searcher's export, at what compute and budget?

Truths (``ground_truth.py``; every architecture trained alone, its true accuracy the mean test accuracy over
seeds): ``cell``, ``DigitsCellSpace`` (125 architectures, ``results/ground_truth.json``), and ``value``,
``DigitsValueSpace`` (value choices, 117 distinct architectures, ``results/ground_truth_value.json``, with each
one's MFLOPs). Every searcher runs through ``NasExperiment`` with NNI's ``Classification`` evaluator (Adam 3e-3,
batch 64): weights on search-train (900 digits), architecture and validation on search-val (400); the test part
(497) is only read from the table. Searchers (``_truth_searchers.py``): ours at the package's default
(``Proxyless(seed=s)``), at the official ``arc_learning_rate=1e-3``, at the budget rule ``max(1e-3, 10 / S)``
for the plan's ``S`` architecture steps (the former default), with ``binary_mode='full_v2'``, with
``arch_update='reinforce'``; NNI 3.0's ``Proxyless`` and ``DARTS`` (a space one of them cannot run is recorded
as not supported, with the error's first line). Each runs ``--seeds`` seeds (``torch.manual_seed(s)``) at
every budget of ``--epochs``; the export is ``export_top_models(top_k=1)``. Every search of ours at its default
also scores ``strategy.rerank(strategy.top_architectures(10))[0]`` (the top 10 re-ranked by the supernet's
validation accuracy), where the package has ``rerank``. Per search: the export's true accuracy, regret (the
best true accuracy minus the export's), true rank (1 = best) and whether it is in the true top 10; Kendall tau
between the final product distribution and the true accuracies; the epoch after which the most probable
architecture no longer changes.

Under a FLOPs target (value truth only, ``_truth_target.py``): ours at its default and at 1e-3 with
``applied_hardware='flops'``, ``latency_target`` = ``ref_latency`` = the median of the table's MFLOPs, scored
against the architectures that meet the target.

Compute is counted in subnet-epochs: the wall time of a search's training batches (weight and architecture
steps; validation excluded) divided by that of one epoch of a random subnet of the same space trained alone by
the same evaluator, timed before every search in the same process (median per worker and space). Random search
at equal compute is simulated from the table's recorded trainings: ``max(1, budget // e)`` uniform
architectures, each trained alone for ``e`` epochs (the table's short protocol, or its full one), the best by
search-val accuracy, ``--repeats`` times. Searches run ``--workers`` at a time (1: timings undisturbed).
Run: ``python benchmarks/truth_search.py`` (about 40 minutes on 2 cores, 21 with ``--workers 2``; ``--quick``:
one seed, one epoch, both truths, ours at the default, 1e-3 and the budget rule and NNI's Proxyless, about half a
minute).
"""

from __future__ import annotations

import inspect
import multiprocessing
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import _harness as h
import _spaces as s
import _truth as t
import _truth_searchers as searchers
import _truth_target as target
from _truth_searchers import DEFAULT, RERANKED, SEARCHERS, TARGETED, Job
from nni_proxyless import Proxyless

HERE = Path(__file__).resolve().parent
TABLES = {'cell': 'ground_truth.json', 'value': 'ground_truth_value.json'}


def plan(args, targets: dict[str, float]) -> list[Job]:
    """Every search, round-robin over budgets, seeds, truths and searchers (the targeted ones after the rest)."""
    jobs = []
    for epochs in args.epochs:
        for seed in range(args.seeds):
            for truth in args.truths:
                named = [(name, None) for name in args.searchers]
                if truth in targets:
                    named += [(name, targets[truth]) for name, (base, _) in TARGETED.items() if base in args.searchers]
                jobs += [Job(truth, name, seed, epochs, len(jobs) + i, mflops)
                         for i, (name, mflops) in enumerate(named)]
    return jobs


def run_jobs(jobs: list[Job], workers: int, search: Callable[[Job], dict] = searchers.one_search) -> list[dict]:
    """Every search (``search(job)``), in this process or in ``workers`` spawned ones; progress printed as they
    end."""
    def report(run: dict) -> dict:
        outcome = run.get('unsupported') or f'export {run["export"]}'
        under = f' (target {run["target_mflops"]:.3f} MFLOPs)' if run['target_mflops'] else ''
        print(f'{run["truth"]} {run["epochs"]} epochs {run["searcher"]}{under} seed {run["seed"]}: {outcome}',
              flush=True)
        return run
    if workers == 1:
        return [report(search(job)) for job in jobs]
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
        runs = [report(run) for run in pool.imap_unordered(search, jobs, chunksize=1)]
    return sorted(runs, key=lambda run: run['index'])


def units(runs: list[dict]) -> dict[tuple, float]:
    """The subnet epoch of each (truth, worker): the median of the random subnets timed in that worker."""
    timed = defaultdict(list)
    for run in runs:
        timed[run['truth'], run['worker']].append(run['unit_seconds'])
    return {group: statistics.median(seconds) for group, seconds in timed.items()}


def scored(run: dict, truth: t.Truth, unit: float) -> dict:
    """A search's export (and argmax, and distribution) scored against the whole table; its cost."""
    run['cost_subnet_epochs'] = round(run['train_seconds'] / unit, 2)
    probabilities = searchers.probabilities(run.pop('final_probabilities'))
    run.update(truth.score(run['export']), argmax_rank=truth.rank(run['argmax']),
               kendall_tau=t.kendall_tau(truth, probabilities))
    return run


def reranked(runs: list[dict], truth: t.Truth, unit_of: dict) -> list[dict]:
    """The re-ranked exports of ours default's searches as runs of their own (cost: search plus re-ranking)."""
    return [{'seed': run['seed'], 'export': run['rerank']['export'],
             'supernet_metric': run['rerank']['supernet_metric'],
             'cost_subnet_epochs': round((run['train_seconds'] + run['rerank']['seconds'])
                                         / unit_of[run['truth'], run['worker']], 2),
             **truth.score(run['rerank']['export'])} for run in runs if run.get('rerank')]


def summarise(runs: list[dict], truth: t.Truth, repeats: int) -> dict:
    """Over seeds: median rank, mean regret, top-10 count, cost; random search at that cost, both protocols."""
    unsupported = [run['unsupported'] for run in runs if 'unsupported' in run]
    if unsupported:
        return {'unsupported': unsupported[0], 'searches': len(runs)}
    median = lambda key: statistics.median(run[key] for run in runs)  # noqa: E731
    cost = median('cost_subnet_epochs')
    summary = {'cost_subnet_epochs': round(cost, 2), 'true_accuracy_median': median('true_accuracy'),
               'regret_mean': round(statistics.mean(run['regret'] for run in runs), 4),
               'regret_median': round(median('regret'), 4), 'rank_median': median('rank'),
               'ranks': [run['rank'] for run in runs], 'in_top': sum(run['in_top'] for run in runs),
               'random': {str(e): t.random_search_summary(truth, cost, e, repeats, seed=0)
                          for e in (truth.short_epochs, truth.epochs)}, 'runs': runs}
    if 'kendall_tau' in runs[0]:
        summary.update(kendall_tau_median=round(median('kendall_tau'), 4), settled_at_median=median('settled_at'),
                       settled_at=[run['settled_at'] for run in runs])
    return summary


def budgets_of(runs: list[dict], truth: t.Truth, unit_of: dict, args) -> dict:
    """Per budget and searcher (the re-ranked exports of ours default a row of their own), the summary."""
    by = defaultdict(list)
    for run in runs:
        if 'unsupported' not in run:
            scored(run, truth, unit_of[run['truth'], run['worker']])
        by[str(run['epochs']), run['searcher']].append(run)
    budgets = {}
    for epochs in map(str, args.epochs):
        budgets[epochs] = {name: summarise(by[epochs, name], truth, args.repeats) for name in args.searchers}
        extra = reranked(by[epochs, DEFAULT], truth, unit_of)
        if extra:
            budgets[epochs][RERANKED] = summarise(extra, truth, args.repeats)
    return budgets


def constrained(runs: list[dict], truth: t.Truth, unit_of: dict, args, mflops: float) -> dict:
    """The searches under the FLOPs target, scored against the architectures that meet it."""
    package = target.package_mflops(truth, mflops)
    check = target.flops_check(truth, package)
    print(f'{truth.space_key}: package MFLOPs against the table\'s: largest relative difference '
          f'{check["largest_relative_difference"]:.2e} over {check["architectures"]} architectures', flush=True)
    within = target.qualifying(truth, package, check, mflops)
    by = defaultdict(list)
    for run in runs:
        run['cost_subnet_epochs'] = round(run['train_seconds'] / unit_of[run['truth'], run['worker']], 2)
        run.pop('final_probabilities')
        run.update(target.score(truth, within, run['export'], target.mflops_of(truth, package, check, run['export']),
                                mflops))
        by[str(run['epochs']), run['searcher']].append(run)
    return {'target_mflops': mflops, 'qualifying': len(within.rows), 'best_qualifying': within.best,
            'flops_check': check,
            'budgets': {e: {name: target.summarise(by[e, name], within, args.repeats)
                            for name in TARGETED if by[e, name]} for e in map(str, args.epochs)}}


def checked(truths: dict) -> dict:
    """The project's targets for ours default, per truth and budget: its median rank no worse than 1e-3's and the
    budget rule's (at budgets under 10 epochs, strictly better than the budget rule's); under the FLOPs target,
    a mean regret below random search's at equal compute (the better protocol)."""
    out = {}
    for key, g in truths.items():
        out[key] = {}
        for epochs, by_name in g['budgets'].items():
            ours, official, rule = (by_name.get(n, {}).get('rank_median') for n in
                                    (DEFAULT, 'ours 1e-3', 'ours budget rule'))
            if None in (ours, official, rule):
                continue
            strict = int(epochs) < 10
            c = {'rank_median': ours, 'official_rank_median': official, 'budget_rule_rank_median': rule,
                 'rule': '< budget rule, <= 1e-3' if strict else '<= min(1e-3, budget rule)',
                 'met': (ours < rule and ours <= official) if strict else ours <= min(official, rule)}
            under = (g.get('constrained') or {}).get('budgets', {}).get(epochs, {}).get(DEFAULT)
            if under:
                random = min(r['regret_mean'] for r in under['random'].values())
                c['constrained'] = {'regret_mean': under['regret_mean'], 'random_regret_mean': random,
                                    'met': under['regret_mean'] < random}
            out[key][epochs] = c
    return out


def largest_architecture(truth: t.Truth) -> dict:
    """The architecture with the most parameters, scored: what a bare preference for capacity would export."""
    def parameters(row: dict) -> int:
        if 'parameters' in row:
            return row['parameters']
        return sum(p.numel() for p in searchers.SPACES[truth.space_key]().freeze(row['arch']).parameters())
    row = max(truth.rows, key=parameters)
    return {'arch': row['arch'], 'parameters': parameters(row), **truth.score(row['arch'])}


def describe(truth: t.Truth, path: Path) -> dict:
    """What the report says about a truth: its size, protocol, best, noise and how it was made."""
    shown = path.relative_to(s.ROOT) if path.is_relative_to(s.ROOT) else path
    return {'table': str(shown), 'space_key': truth.space_key, 'architectures': len(truth.rows),
            'seeds': truth.seeds, 'epochs': truth.epochs, 'short_epochs': truth.short_epochs, 'best': truth.best,
            'top_threshold': truth.top_threshold, **t.truth_noise(truth), **truth.about}


def run(args, truths: dict[str, t.Truth], paths: dict[str, Path]) -> dict:
    """Every search, then per truth: the summaries, the searches under the target, what was checked."""
    targets = {key: target.target_mflops(truth) for key, truth in truths.items() if key == 'value'}
    runs = run_jobs(plan(args, targets), args.workers)
    unit_of = units(runs)
    out = {}
    for key, truth in truths.items():
        mine = [run for run in runs if run['truth'] == key]
        free = [run for run in mine if run['target_mflops'] is None]
        out[key] = {'truth': describe(truth, paths[key]),
                    'subnet_epoch_seconds': round(statistics.median(v for (k, _), v in unit_of.items() if k == key), 4),
                    'subnet_epochs_timed': len(mine), 'budgets': budgets_of(free, truth, unit_of, args),
                    'largest_architecture': largest_architecture(truth)}
        if key in targets:
            out[key]['constrained'] = constrained([r for r in mine if r['target_mflops'] is not None], truth,
                                                  unit_of, args, targets[key])
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--truths', nargs='+', default=list(TABLES), choices=list(TABLES))
    parser.add_argument('--tables', default=str(HERE / 'results'), help='folder of ground_truth*.json')
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--epochs', type=int, nargs='+', default=[3, 10, 30], help='the budgets, in epochs')
    parser.add_argument('--repeats', type=int, default=1000, help='simulated random searches per budget')
    parser.add_argument('--searchers', nargs='+', default=list(SEARCHERS), choices=list(SEARCHERS))
    parser.add_argument('--workers', type=int, default=1, help='searches run at a time, each in its own process')
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('truth_search.py', argv)
    if args.quick:  # a smoke run: the searchers the checks compare (and NNI's Proxyless, which refuses a truth)
        args.seeds, args.epochs, args.repeats = 1, [1], 50
        args.searchers = [n for n in (DEFAULT, 'ours 1e-3', 'ours budget rule', 'NNI Proxyless') if n in args.searchers]
    paths = {key: Path(args.tables) / TABLES[key] for key in args.truths}
    truths = {key: t.Truth.load(path) for key, path in paths.items()}
    steps = {e: searchers.architecture_steps(s.digits_tensors(), e) for e in args.epochs}
    default_rate = inspect.signature(Proxyless).parameters['arc_learning_rate'].default
    result.update(seeds=args.seeds, epochs=args.epochs, repeats=args.repeats, workers=args.workers,
                  searchers=args.searchers, package_default_arc_learning_rate=default_rate,
                  plans={str(e): {'architecture_steps': n, 'budget_rule_arc_learning_rate': searchers.budget_rule(n)}
                         for e, n in steps.items()},
                  truths=run(args, truths, paths))
    result['checked'] = checked(result['truths'])
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
