"""Short budgets: how far the architecture distribution moves at the official learning rate and at ``'auto'``.

Each search runs through ``NasExperiment`` on scikit-learn's digits with the default ``arch_update_every=5``
unless stated. Settings: the official ``arc_learning_rate=1e-3``; ``'auto'`` (the default,
``max(1e-3, NOISE_DRIFT / sqrt(S))`` for ``S`` architecture steps); ``'auto'`` with twice the constant (to show
what it does); the former default ``max(1e-3, 10 / S)``; and, on the quick start's space, the quick start's
former explicit settings (an architecture step every batch at 3e-3). Spaces:

* ``EquivalentSpace`` (tests/planted.py; 3 labels x 4 copies of one learnable block, only their initial weights
  differ), the tests' digits evaluator (1000 training / 797 validation images, batch 64, Adam 3e-3), 3 epochs:
  no candidate is better, so whatever the distribution prefers is noise;
* ``DegradingSpace`` (tests/planted.py; 3 labels x 4 candidates, the wrong ones weaken the signal and add
  noise), same data, 10 epochs: is the export the planted architecture, and has every planted candidate a
  probability of at least 0.5;
* ``DigitsConvSpace`` (benchmarks/_spaces.py; 3 labels x 10 bottlenecks or skip, BatchNorm), same data,
  15 epochs;
* the quick start's ``DigitsSpace`` (examples/quickstart_digits.py; BatchNorm, a searched depth and skip),
  its data (1200 / 597, batch 64, Adam 3e-3), 30 epochs, no latency term.

Per search: the entropy over the uniform distribution's, each label's largest probability, the last
validation accuracy of the most probable architecture (BatchNorm statistics recomputed), the export. Not a
timing; searches run ``--workers`` at a time. Run: ``python benchmarks/short_budget.py`` (``--quick``).
"""

from __future__ import annotations

import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import _harness as h
import _spaces as s

sys.path.insert(0, str(s.ROOT / 'examples'))

# name -> Proxyless arguments (``drift`` sets NOISE_DRIFT for 'auto'; ``budget_rule`` swaps in the former rule)
SETTINGS = {
    'official (1e-3)': dict(arc_learning_rate=1e-3),
    'auto': dict(),
    'auto, drift x2': dict(drift=2.0),
    'former budget rule (10 / S)': dict(budget_rule=True),
    'quick start\'s former (every 1, 3e-3)': dict(arch_update_every=1, arc_learning_rate=3e-3),
}
COMPARED = ['official (1e-3)', 'auto', 'auto, drift x2', 'former budget rule (10 / S)']

# space -> (epochs, settings compared)
SPACES = {
    'EquivalentSpace': (3, COMPARED),
    'DegradingSpace': (10, COMPARED),
    'DigitsConvSpace': (15, COMPARED),
    'quick start DigitsSpace': (30, ['official (1e-3)', 'auto', 'quick start\'s former (every 1, 3e-3)']),
}


def _former_budget_rule(steps: float) -> float:
    """The default before the noise bound: ``max(1e-3, 10 / S)`` (logits may travel 10 units in any search)."""
    return 1e-3 if steps <= 0 or math.isinf(steps) else max(1e-3, 10.0 / steps)


def _space_and_evaluator(space: str, seed: int, epochs: int):
    from conftest import digits_evaluator
    if space == 'DegradingSpace':
        from planted import DegradingSpace
        return DegradingSpace(plant_seed=100 + seed), digits_evaluator(epochs=epochs)
    if space == 'EquivalentSpace':
        from planted import EquivalentSpace
        return EquivalentSpace(), digits_evaluator(epochs=epochs)
    if space == 'DigitsConvSpace':
        return s.DigitsConvSpace(), digits_evaluator(epochs=epochs)
    from nni.nas.evaluator.pytorch import Classification
    from quickstart_digits import DigitsSpace, digits_loaders
    train, val = digits_loaders(64)
    return DigitsSpace(), Classification(train_dataloaders=train, val_dataloaders=val, num_classes=10,
                                         learning_rate=3e-3, max_epochs=epochs, accelerator='cpu', logger=False,
                                         enable_checkpointing=False, enable_progress_bar=False,
                                         enable_model_summary=False)


def one_search(job: tuple[str, str, int, int]) -> dict:
    """One search in a worker process; what the distribution and the export look like at its end."""
    space_name, setting, seed, epochs = job
    torch.set_num_threads(1)
    h.quiet_lightning()
    from conftest import run_search
    from nni_proxyless import Proxyless
    from nni_proxyless.callbacks import convergence
    options = dict(SETTINGS[setting])
    default_drift, default_rule = convergence.NOISE_DRIFT, convergence.auto_arc_learning_rate
    convergence.NOISE_DRIFT = default_drift * options.pop('drift', 1.0)
    if options.pop('budget_rule', False):
        convergence.auto_arc_learning_rate = _former_budget_rule
    torch.manual_seed(seed)
    space, evaluator = _space_and_evaluator(space_name, seed, epochs)
    strategy = Proxyless(seed=seed, **options)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            exp = run_search(space, strategy, evaluator, Path(workdir))
            export = dict(exp.export_top_models(top_k=1, formatter='dict')[0])
    finally:
        convergence.NOISE_DRIFT, convergence.auto_arc_learning_rate = default_drift, default_rule
    arch, module = strategy.arch, strategy.oneshot_module
    uniform = sum(math.log(len(choice.values)) for choice in arch.choices.values())
    result = {'space': space_name, 'setting': setting, 'seed': seed, 'export': export,
              'arc_learning_rate': module.architecture_optimizers().optimizer.param_groups[0]['lr'],
              'entropy_fraction': round(arch.entropy() / uniform, 4),
              'top_probability': {label: round(float(arch.probs(label).max()), 4) for label in arch.labels()},
              'validation_accuracy': round(float(module.reports[-1]['default']), 4)}
    if hasattr(space, 'planted_architecture'):
        planted = space.planted_architecture()
        probabilities = [float(arch.probs(label)[index]) for label, index in planted.items()]
        result.update(exported_planted=export == planted, planted_min_probability=round(min(probabilities), 4),
                      settled=export == planted and min(probabilities) >= 0.5)
    return result


def summarise(runs: list[dict]) -> dict:
    """Means over seeds (and labels), counts for the planted space."""
    top = [statistics.mean(r['top_probability'].values()) for r in runs]
    summary = {'seeds': len(runs), 'arc_learning_rate': runs[0]['arc_learning_rate'],
               'entropy_fraction': round(statistics.mean(r['entropy_fraction'] for r in runs), 4),
               'top_probability': round(statistics.mean(top), 4),
               'validation_accuracy': round(statistics.mean(r['validation_accuracy'] for r in runs), 4),
               'validation_accuracy_range': [min(r['validation_accuracy'] for r in runs),
                                             max(r['validation_accuracy'] for r in runs)],
               'runs': runs}
    if 'settled' in runs[0]:
        summary.update(exported_planted=sum(r['exported_planted'] for r in runs),
                       settled=sum(r['settled'] for r in runs),
                       planted_min_probability=round(statistics.mean(r['planted_min_probability'] for r in runs), 4))
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--seeds', type=int, nargs=4, default=[5, 10, 3, 3],
                        metavar=('EQUIVALENT', 'DEGRADING', 'CONV', 'QUICK'),
                        help='seeds per space, in the order above')
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('short_budget.py', argv)
    spaces = {name: (epochs, settings, seeds) for (name, (epochs, settings)), seeds in zip(SPACES.items(), args.seeds)}
    if args.quick:
        spaces, args.workers = {'DegradingSpace': (1, ['official (1e-3)', 'auto'], 1)}, 1
    jobs = [(name, setting, seed, epochs) for name, (epochs, settings, seeds) in spaces.items()
            for setting in settings for seed in range(seeds)]
    if args.workers == 1:
        runs = [one_search(job) for job in jobs]
    else:
        with multiprocessing.get_context('spawn').Pool(args.workers) as pool:
            runs = pool.map(one_search, jobs, chunksize=1)
    result['spaces'] = {name: {'epochs': epochs, 'settings': {
        setting: summarise([r for r in runs if r['space'] == name and r['setting'] == setting])
        for setting in settings}} for name, (epochs, settings, _) in spaces.items()}
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
