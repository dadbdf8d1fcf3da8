"""One search, several budgets: ``Proxyless.latency_front`` on the value truth, against one search per budget and
random search.

The truth is ``truth_search.py``'s value one (``DigitsValueSpace``, ``results/ground_truth_value.json``: every
architecture trained alone, its true accuracy and MFLOPs). Budgets: the 25th, 50th and 75th percentile of the
table's MFLOPs; an architecture qualifies for a budget when its MFLOPs are within it (the package's FLOPs agree
with the table's, ``_truth_target.flops_check``). For each seed (``torch.manual_seed(s)``, ``Proxyless(seed=s)``)
and search budget in epochs:

* the front: ONE search with ``applied_hardware='flops'``, ``dummy_input=(1, 1, 8, 8)``,
  ``deploy_targets=budgets`` (its weight steps draw their paths within each budget in turn), no target, the
  package's defaults otherwise; then ``strategy.latency_front(candidates=c, evaluate=c > 1)`` (its budgets: the
  search's) for each ``c`` of ``--candidates`` (1: the most probable architecture within each budget, no
  evaluation; more: that many most probable within it, compared by search-val accuracy with the supernet's
  weights, BatchNorm recalibrated), each call timed;
* the same front from a search not given the budgets (no ``deploy_targets``: paths from the whole
  distribution), 1 candidate, as a user who decides the budgets after the search gets it;
* one search per budget, ``Proxyless(applied_hardware='flops', latency_target=budget, ...)`` as a user writes it,
  its ``export_top_models(top_k=1)`` (``truth_search.py``'s targeted search of ours default).

Every pick is scored among its budget's qualifying architectures (``_truth_target.score``: true accuracy, regret
against the best of them, rank, whether it meets the budget). Compute is in subnet-epochs, as ``truth_search.py``
counts it: the wall time of a search's training batches (its per-epoch validation excluded, as there) over that of
one epoch of a random subnet trained alone, timed before every search in the same process (median per worker).
The front's evaluation passes are not free: the wall time of each ``latency_front`` call, in the same unit, is
added to its search's. A front's pick for a budget is charged a third of that total (its search and evaluations
serve the three budgets); a per-budget search is charged its own cost. Random search (``_truth.random_search``
over the qualifying architectures, both of the table's training protocols, ``--repeats`` simulations) runs at the
compute charged to each row: for the front, its whole cost split evenly over the budgets ("equal total compute");
for the per-budget searches, one search's compute per budget. Searches run ``--workers`` at a time (1: timings
undisturbed). Run: ``python benchmarks/deploy_front.py --workers 2`` (10 seeds: 10 minutes on 2 cores, load
average 1-2; ``--quick``: one seed, one epoch, candidates 1 and 5, about half a minute).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import _harness as h
import _spaces as s
import _truth as t
import _truth_searchers as searchers
import _truth_target as target
import truth_search
from _truth_searchers import DEFAULT, SEARCHERS, Job

HERE = Path(__file__).resolve().parent
TRUTH = 'value'
PER_BUDGET = 'one search per budget'
NOT_GIVEN = 'front, budgets not given to the search, 1 candidate'


def front_name(candidates: int) -> str:
    return f'front, {candidates} candidate{"s" if candidates > 1 else ""}'


@dataclass(frozen=True)
class FrontJob(Job):
    """The front's search (no target; ``deploy_targets=budgets`` when ``given``), then
    ``latency_front(budgets, candidates=c)`` for each ``c``."""

    budgets: tuple[float, ...] = ()
    candidates: tuple[int, ...] = ()
    given: bool = True


def percentile_budgets(truth: t.Truth) -> list[float]:
    """The 25th, 50th and 75th percentile of the table's MFLOPs (the middle one its median)."""
    return statistics.quantiles([row['mflops'] for row in truth.rows], n=4, method='inclusive')


def plan(args, budgets: list[float]) -> list[Job]:
    """Per search budget and seed: the front's search and one search per budget; the longest searches first, so
    that the workers end together."""
    jobs: list[Job] = []
    for epochs in sorted(args.epochs, reverse=True):
        for seed in range(args.seeds):
            jobs.append(FrontJob(TRUTH, 'front', seed, epochs, len(jobs), None, tuple(budgets), tuple(args.candidates)))
            jobs.append(FrontJob(TRUTH, NOT_GIVEN, seed, epochs, len(jobs), None, tuple(budgets), (1,), False))
            jobs += [Job(TRUTH, DEFAULT, seed, epochs, len(jobs) + i, budget) for i, budget in enumerate(budgets)]
    return jobs


def one_job(job: Job) -> dict:
    """A front (:class:`FrontJob`) or a search under a target (``truth_search.py``'s), in a worker."""
    if not isinstance(job, FrontJob):
        return searchers.one_search(job)
    data, record = searchers.prepared(job)
    deploy = {'deploy_targets': list(job.budgets)} if job.given else {}
    strategy = SEARCHERS[DEFAULT](job.seed, searchers.architecture_steps(data, job.epochs),
                                  **searchers.flops_options(None, DEFAULT), **deploy)
    record.update(searchers.search(job, strategy, data))
    record['fronts'] = {}
    for candidates in job.candidates:
        started = time.perf_counter()
        # the picks of 1 candidate need no evaluation: left out, so that its cost is the search's alone
        # given to the search, the budgets are latency_front's default
        front = strategy.latency_front(None if job.given else list(job.budgets), candidates=candidates,
                                       evaluate=candidates > 1)
        record['fronts'][str(candidates)] = {
            'seconds': round(time.perf_counter() - started, 3),
            'picks': [{'target': pick.target, 'compared': pick.candidates,
                       'export': None if pick.architecture is None else dict(pick.architecture),
                       'probability': None if pick.architecture is None else pick.architecture.probability,
                       'supernet_metric': None if pick.architecture is None else pick.architecture.supernet_metric}
                      for pick in front]}
    return record


class Scorer:
    """Scores picks against each budget's qualifying architectures, by the MFLOPs ``flops_check`` chose."""

    def __init__(self, truth: t.Truth, budgets: list[float]):
        self.truth, self.budgets = truth, budgets
        package = target.package_mflops(truth, statistics.median(budgets))
        self.check = target.flops_check(truth, package)
        self._package = package
        self.within = {budget: target.qualifying(truth, package, self.check, budget) for budget in budgets}

    def score(self, arch: dict | None, budget: float) -> dict:
        if arch is None:  # nothing the front considered met the budget (the exact top-k within it never does this)
            raise RuntimeError(f'latency_front found no architecture within {budget} MFLOPs.')
        mflops = target.mflops_of(self.truth, self._package, self.check, arch)
        return {'export': arch, **target.score(self.truth, self.within[budget], arch, mflops, budget)}


def picks(runs: list[dict], unit_of: dict, scorer: Scorer) -> dict[tuple, list[dict]]:
    """(epochs, budget index, method) -> one scored pick per seed, with the compute charged to it."""
    by = defaultdict(list)
    shares = len(scorer.budgets)
    for run in runs:
        unit = unit_of[run['truth'], run['worker']]
        search_cost = run['train_seconds'] / unit
        run.pop('final_probabilities', None)
        if 'fronts' in run:
            for candidates, front in run['fronts'].items():
                evaluation = front['seconds'] / unit
                total = search_cost + evaluation
                name = front_name(int(candidates)) if run['searcher'] == 'front' else run['searcher']
                for i, pick in enumerate(front['picks']):
                    by[run['epochs'], i, name].append({
                        'seed': run['seed'], **scorer.score(pick['export'], scorer.budgets[i]),
                        'supernet_metric': pick['supernet_metric'], 'probability': pick['probability'],
                        'compared': pick['compared'], 'search_subnet_epochs': round(search_cost, 2),
                        'evaluation_subnet_epochs': round(evaluation, 2), 'total_subnet_epochs': round(total, 2),
                        'cost_subnet_epochs': round(total / shares, 2)})
        else:
            i = scorer.budgets.index(run['target_mflops'])
            by[run['epochs'], i, PER_BUDGET].append({
                'seed': run['seed'], **scorer.score(run['export'], run['target_mflops']),
                'search_subnet_epochs': round(search_cost, 2), 'cost_subnet_epochs': round(search_cost, 2)})
    return by


def same_picks(a: list[dict], b: list[dict]) -> int:
    """Seeds at which two methods picked the same architecture."""
    first = {run['seed']: t.key(run['export']) for run in a}
    return sum(first.get(run['seed']) == t.key(run['export']) for run in b)


def summarised(by: dict, scorer: Scorer, args, methods: list[str]) -> dict:
    """Per search budget (epochs) and latency budget: each method's summary (``_truth_target.summarise``: random
    search at the compute charged to it), and how often each picked what the front of a search not given the
    budgets picked."""
    out = {}
    for epochs in map(int, args.epochs):
        out[str(epochs)] = []
        for i, budget in enumerate(scorer.budgets):
            within = scorer.within[budget]
            rows = {name: target.summarise(by[epochs, i, name], within, args.repeats) for name in methods}
            for name, summary in rows.items():
                summary['same_as_not_given'] = same_picks(by[epochs, i, NOT_GIVEN], summary['runs'])
                if name.startswith('front'):
                    summary['total_cost_subnet_epochs'] = round(statistics.median(
                        run['total_subnet_epochs'] for run in summary['runs']), 2)
                    summary['evaluation_subnet_epochs'] = round(statistics.median(
                        run['evaluation_subnet_epochs'] for run in summary['runs']), 2)
            out[str(epochs)].append({'budget_mflops': budget, 'qualifying': len(within.rows),
                                     'best_qualifying': within.best, 'methods': rows})
    return out


def verdict(results: dict, candidates: list[int]) -> dict:
    """Per compared candidate count: at how many (epochs, budget) cells its mean regret is below, equal to and
    above the front of 1 candidate's, and its mean regret over every cell against 1's."""
    one = front_name(1)
    out = {}
    for c in candidates:
        if c == 1:
            continue
        pairs = [(cell['methods'][one]['regret_mean'], cell['methods'][front_name(c)]['regret_mean'])
                 for cells in results.values() for cell in cells]
        out[str(c)] = {'better': sum(b < a for a, b in pairs), 'equal': sum(b == a for a, b in pairs),
                       'worse': sum(b > a for a, b in pairs), 'cells': len(pairs),
                       'regret_mean_over_cells': round(statistics.mean(b for _, b in pairs), 4),
                       'front_1_regret_mean_over_cells': round(statistics.mean(a for a, _ in pairs), 4)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--table', default=str(HERE / 'results' / truth_search.TABLES[TRUTH]))
    parser.add_argument('--seeds', type=int, default=10)
    parser.add_argument('--epochs', type=int, nargs='+', default=[3, 10, 30], help='search budgets, in epochs')
    parser.add_argument('--candidates', type=int, nargs='+', default=[1, 5, 10],
                        help="latency_front's candidates (1 is always compared)")
    parser.add_argument('--repeats', type=int, default=1000, help='simulated random searches per row')
    parser.add_argument('--workers', type=int, default=1, help='searches run at a time, each in its own process')
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('deploy_front.py', argv)
    if args.quick:
        args.seeds, args.epochs, args.candidates, args.repeats = 1, [1], [1, 5], 50
    args.candidates = sorted(set(args.candidates) | {1})
    truth = t.Truth.load(Path(args.table))
    budgets = percentile_budgets(truth)
    scorer = Scorer(truth, budgets)
    print(f'{TRUTH}: budgets {", ".join(f"{b:.4g}" for b in budgets)} MFLOPs; package MFLOPs against the table\'s: '
          f'largest relative difference {scorer.check["largest_relative_difference"]:.2e}', flush=True)
    runs = truth_search.run_jobs(plan(args, budgets), args.workers, one_job)
    unit_of = truth_search.units(runs)
    methods = [front_name(c) for c in args.candidates] + [NOT_GIVEN, PER_BUDGET]
    results = summarised(picks(runs, unit_of, scorer), scorer, args, methods)
    table = Path(args.table).resolve()
    result.update(seeds=args.seeds, epochs=args.epochs, candidates=args.candidates, repeats=args.repeats,
                  workers=args.workers, methods=methods,
                  table=str(table.relative_to(s.ROOT) if table.is_relative_to(s.ROOT) else table),
                  architectures=len(truth.rows), best=truth.best, short_epochs=truth.short_epochs,
                  full_epochs=truth.epochs, flops_check=scorer.check,
                  subnet_epoch_seconds=round(statistics.median(unit_of.values()), 4), budgets=results,
                  candidates_against_one=verdict(results, args.candidates))
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
