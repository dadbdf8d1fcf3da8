"""Search quality against the ground truth: how good is each searcher's export, at what compute?

Space and truth: ``DigitsCellSpace`` (125 architectures) and ``benchmarks/results/ground_truth.json``, where
every architecture was trained alone (``ground_truth.py``). Every searcher runs through ``NasExperiment`` at its
default settings with NNI's ``Classification`` evaluator (Adam 3e-3, batch 64): weights on search-train (900
digits), architecture and validation on search-val (400); the test part (497) is only read from the table.
Searchers: ours (``Proxyless(seed=s)``: ``binary_mode='two'``; ``binary_mode='full_v2'``;
``arch_update='reinforce'``), NNI 3.0's ``Proxyless`` and ``DARTS``. Each runs ``--seeds`` seeds
(``torch.manual_seed(s)``) at a short and a long budget (``--short`` / ``--long`` epochs); the export is
``export_top_models(top_k=1)``. Per search: the export's true accuracy, regret (the best true accuracy minus
the export's), true rank (1 = best) and whether it is in the true top 10; Kendall tau between the final
product distribution over the 125 architectures and the true accuracies; the epoch after which the most
probable architecture no longer changes.

Compute is counted in subnet-epochs: the wall time of a search's training batches (weight and architecture
steps; validation excluded) divided by that of one epoch of a random subnet trained alone by the same evaluator,
timed before every search (median over all of them). Random search at equal compute is simulated from the
table's recorded trainings: ``max(1, budget // e)`` uniform architectures, each trained alone for ``e``
epochs (the table's short protocol, or its full one), the best by search-val accuracy, ``--repeats`` times.
Run: ``python benchmarks/truth_search.py`` (``--quick`` for a smoke run of seconds).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

import _harness as h
import _spaces as s
import _truth as t
from conftest import run_search
from nni.nas.evaluator.pytorch import Classification
from nni_proxyless import Proxyless

HERE = Path(__file__).resolve().parent
OURS = 'ours two'

# name -> strategy of a seed, every one at its defaults
SEARCHERS = {
    OURS: lambda seed: Proxyless(seed=seed),
    'ours full_v2': lambda seed: Proxyless(binary_mode='full_v2', seed=seed),
    'ours REINFORCE': lambda seed: Proxyless(arch_update='reinforce', seed=seed),
    'NNI Proxyless': lambda seed: h.nni_strategy('Proxyless')(),
    'NNI DARTS': lambda seed: h.nni_strategy('DARTS')(),
}


def _evaluator(data: dict, epochs: int, seed: int, callbacks: list) -> Classification:
    return Classification(train_dataloaders=s.digits_loader(data['train'], seed=seed),
                          val_dataloaders=s.digits_loader(data['val'], shuffle=False), num_classes=10,
                          learning_rate=3e-3, max_epochs=epochs, accelerator='cpu', enable_progress_bar=False,
                          logger=False, enable_checkpointing=False, enable_model_summary=False,
                          num_sanity_val_steps=0, callbacks=callbacks)


def subnet_epoch_seconds(data: dict, seed: int) -> float:
    """Wall time of one training epoch of a random subnet alone (same evaluator; its first batch not timed)."""
    space = s.DigitsCellSpace()
    evaluator = _evaluator(data, 1, seed, [])
    evaluator.module.set_model(space.freeze(s.random_sample(space, seed)))
    timer = h.EpochTimer(skip=1)
    h.quiet_trainer(max_epochs=1, callbacks=[timer]).fit(evaluator.module, evaluator.train_dataloaders)
    return timer.seconds / timer.batches * (timer.batches + 1)


def search(name: str, seed: int, epochs: int, data: dict, truth: t.Truth, workdir: Path) -> dict:
    """One search; its export and final argmax scored against the truth, its distribution and its time."""
    torch.manual_seed(seed)
    timer, recorder = h.EpochTimer(skip=0), h.DistributionRecorder()
    exp = run_search(s.DigitsCellSpace(), SEARCHERS[name](seed), _evaluator(data, epochs, seed, [timer, recorder]),
                     workdir)
    export = dict(exp.export_top_models(top_k=1, formatter='dict')[0])
    final = recorder.history[-1]
    maximum = sum(math.log(len(values)) for values in final.values())
    return {'seed': seed, 'export': export, **truth.score(export),
            'argmax_rank': truth.rank(recorder.argmaxes()[-1]), 'kendall_tau': t.kendall_tau(truth, final),
            'settled_at': recorder.settled_at(), 'entropy_fraction': round(h.entropy_of(final) / maximum, 4),
            'train_seconds': round(timer.seconds, 3)}


def summarise(runs: list[dict], unit: float, truth: t.Truth, repeats: int) -> dict:
    """Medians over seeds; the cost in subnet-epochs; random search at that cost under both protocols."""
    costs = [run['train_seconds'] / unit for run in runs]
    for run, cost in zip(runs, costs):
        run['cost_subnet_epochs'] = round(cost, 2)
    median = lambda key: statistics.median(run[key] for run in runs)  # noqa: E731
    cost = statistics.median(costs)
    return {'cost_subnet_epochs': round(cost, 2), 'true_accuracy_median': median('true_accuracy'),
            'regret_median': round(median('regret'), 4), 'rank_median': median('rank'),
            'ranks': [run['rank'] for run in runs], 'in_top': sum(run['in_top'] for run in runs),
            'kendall_tau_median': round(median('kendall_tau'), 4), 'settled_at_median': median('settled_at'),
            'settled_at': [run['settled_at'] for run in runs],
            'random': {str(e): t.random_search_summary(truth, cost, e, repeats, seed=0)
                       for e in (truth.short_epochs, truth.epochs)},
            'runs': runs}


def random_curve(truth: t.Truth, largest: float, repeats: int) -> dict[str, list[dict]]:
    """Random search over a geometric grid of budgets up to ``largest`` subnet-epochs, for both protocols."""
    budgets = sorted({round(2 ** (k / 4), 2) for k in range(int(4 * math.log2(max(largest, 2))) + 2)})
    return {str(e): [t.random_search_summary(truth, b, e, repeats, seed=0) for b in budgets if b >= e]
            for e in (truth.short_epochs, truth.epochs)}


def targets(budgets: dict, truth: t.Truth) -> dict:
    """The project's target at default settings, checked: ours' median true rank within the top 5% (long) and
    10% (short) of the space, and lower than NNI's Proxyless's and than random search's at equal compute."""
    checked = {}
    for budget, share in (('long', 0.05), ('short', 0.10)):
        ours, nni = budgets[budget][OURS], budgets[budget]['NNI Proxyless']
        best_random = min(r['rank_median'] for r in ours['random'].values())
        limit = share * len(truth.rows)
        checked[budget] = {'rank_median': ours['rank_median'], 'rank_limit': limit,
                           'within_limit': ours['rank_median'] <= limit,
                           'nni_proxyless_rank_median': nni['rank_median'],
                           'ahead_of_nni_proxyless': ours['rank_median'] < nni['rank_median'],
                           'random_rank_median': best_random, 'ahead_of_random': ours['rank_median'] < best_random}
    return checked


def largest_architecture(truth: t.Truth) -> dict:
    """The architecture with the most parameters, scored: what a bare preference for capacity would export."""
    space = s.DigitsCellSpace()
    sizes = [(sum(p.numel() for p in space.freeze(row['arch']).parameters()), row['arch']) for row in truth.rows]
    parameters, arch = max(sizes, key=lambda pair: pair[0])
    return {'arch': arch, 'parameters': parameters, **truth.score(arch)}


def run(args, truth: t.Truth) -> dict:
    """Every searcher, seed and budget, round-robin; a subnet epoch timed before every search."""
    data, units = s.digits_tensors(), []
    runs = {budget: {name: [] for name in args.searchers} for budget in ('short', 'long')}
    with tempfile.TemporaryDirectory() as workdir:
        for budget, epochs in (('short', args.short), ('long', args.long)):
            for seed in range(args.seeds):
                for name in args.searchers:
                    units.append(subnet_epoch_seconds(data, len(units)))
                    folder = Path(workdir) / f'{budget}-{seed}-{name.replace(" ", "_")}'
                    runs[budget][name].append(search(name, seed, epochs, data, truth, folder))
                    print(f'{budget} {name} seed {seed}: rank {runs[budget][name][-1]["rank"]}', flush=True)
    unit = statistics.median(units)
    budgets = {budget: {name: summarise(r, unit, truth, args.repeats) for name, r in by_name.items()}
               for budget, by_name in runs.items()}
    largest = max(summary['cost_subnet_epochs'] for by_name in budgets.values() for summary in by_name.values())
    return {'subnet_epoch_seconds': round(unit, 4), 'subnet_epochs_timed': len(units), 'budgets': budgets,
            'largest_architecture': largest_architecture(truth),
            'random_curve': random_curve(truth, 1.5 * largest, args.repeats),
            'targets': targets(budgets, truth) if OURS in args.searchers and 'NNI Proxyless' in args.searchers
            else None}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--truth', default=str(HERE / 'results' / 'ground_truth.json'))
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--short', type=int, default=10, help='epochs of the short budget')
    parser.add_argument('--long', type=int, default=30, help='epochs of the long budget')
    parser.add_argument('--repeats', type=int, default=1000, help='simulated random searches per budget')
    parser.add_argument('--searchers', nargs='+', default=list(SEARCHERS), choices=list(SEARCHERS))
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('truth_search.py', argv)
    if args.quick:
        args.seeds, args.short, args.long, args.repeats = 1, 1, 2, 50
    truth = t.Truth.load(Path(args.truth))
    result.update(space='DigitsCellSpace: a three-edge NAS-Bench-201-style cell, 125 architectures, 8x8 digits',
                  seeds=args.seeds, epochs={'short': args.short, 'long': args.long}, repeats=args.repeats,
                  truth={'architectures': len(truth.rows), 'seeds': truth.seeds, 'epochs': truth.epochs,
                         'short_epochs': truth.short_epochs, 'best': truth.best, 'top_threshold': truth.top_threshold,
                         **t.truth_noise(truth), **truth.about}, **run(args, truth))
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
