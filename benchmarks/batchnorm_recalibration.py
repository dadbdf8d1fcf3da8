"""BatchNorm recalibration: how many training batches it needs (digits spaces) and what it costs (hub space).

Batches needed. Two digits spaces with BatchNorm: ``DigitsConvSpace`` (benchmarks/_spaces.py) on the tests'
split (1000 training / 797 validation images) and the quick start's ``DigitsSpace`` on its split (1200 / 597),
batch 64, each searched ``--epochs`` epochs at the default settings for ``--seeds`` seeds. For each search's
top-3 architectures, the subnet with the supernet's weights is scored on the validation images with: the
supernet's own running statistics; statistics recomputed on the first ``N`` batches of a seeded, shuffled pass
over the training data (``--pass-seeds`` passes per ``N``); and on every training batch (the reference). We
report the mean and largest distance in accuracy to the reference. The same searches at the official
``arc_learning_rate=1e-3`` (whose distribution stays near uniform, so the statistics mix every path) give the
supernet's own statistics a second row.

Cost. NNI's hub ProxylessNAS space (width 0.35, 32x32 random data, one torch thread): one recalibration of
``--batches`` batches of the most probable architecture (``BatchNormRecalibration.applied``: statistics saved,
the pass, statistics put back) against the search's own training batches (weight step plus an architecture
step every 5, the official learning rate), interleaved over ``--rounds`` rounds in one process; medians.
Run: ``python benchmarks/batchnorm_recalibration.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import _harness as h
import _spaces as s
from nni_proxyless import Proxyless
from nni_proxyless.callbacks.batchnorm import BatchNormRecalibration, recalibrate, seeded_pass

sys.path.insert(0, str(s.ROOT / 'examples'))


def _digits_search(space_name: str, seed: int, epochs: int, workdir: Path, **options):
    """A search (default settings but ``options``); the supernet, the experiment, and the training and
    validation datasets."""
    from conftest import digits_datasets, digits_evaluator, run_search
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from quickstart_digits import DigitsSpace, digits_loaders
    torch.manual_seed(seed)
    if space_name == 'DigitsConvSpace':
        space, (train, val), evaluator = s.DigitsConvSpace(), digits_datasets(), digits_evaluator(epochs=epochs)
    else:
        train_loader, val_loader = digits_loaders(64)
        space, train, val = DigitsSpace(), train_loader.dataset, val_loader.dataset
        evaluator = Classification(train_dataloaders=DataLoader(train, batch_size=64, shuffle=True),
                                   val_dataloaders=DataLoader(val, batch_size=64), num_classes=10,
                                   learning_rate=3e-3, max_epochs=epochs, accelerator='cpu', logger=False,
                                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    exp = run_search(space, Proxyless(seed=seed, **options), evaluator, workdir)
    return space, exp, train, val


def _accuracy(model: nn.Module, dataset) -> float:
    x, y = zip(*[dataset[i] for i in range(len(dataset))])
    model.eval()
    with torch.no_grad():
        return (model(torch.stack(x)).argmax(1) == torch.stack(y)).float().mean().item()


def _recalibrated_accuracy(subnet: nn.Module, train, val, batches: int, seed: int) -> float:
    model = copy.deepcopy(subnet)
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    with seeded_pass(loader, seed, batches) as chosen:
        recalibrate(model, chosen, lambda batch: model(batch[0]))
    return _accuracy(model, val)


def batches_needed(space_name: str, seeds: int, epochs: int, counts: list[int], pass_seeds: int) -> dict:
    """Distance in accuracy to the full-data statistics, by number of batches, over searches and top-3; and
    that of the supernet's own statistics after searches at the official learning rate."""
    distances: dict[str, list[float]] = {str(n): [] for n in ['supernet', 'supernet, official rate'] + counts}
    references = []
    for seed in range(seeds):
        for official in (False, True):
            options = {'arc_learning_rate': 1e-3} if official else {}
            with tempfile.TemporaryDirectory() as workdir:
                space, exp, train, val = _digits_search(space_name, seed, epochs, Path(workdir), **options)
            every = -(-len(train) // 64)
            for architecture in exp.export_top_models(top_k=3, formatter='dict'):
                subnet = space.freeze(dict(architecture))       # the supernet's weights and running statistics
                reference = _recalibrated_accuracy(subnet, train, val, every, 0)
                own = abs(_accuracy(copy.deepcopy(subnet), val) - reference)
                distances['supernet, official rate' if official else 'supernet'].append(own)
                if official:
                    continue
                references.append(reference)
                for n in counts:
                    distances[str(n)] += [abs(_recalibrated_accuracy(subnet, train, val, n, 1 + k) - reference)
                                          for k in range(pass_seeds)]
    return {'training_batches': every, 'reference_accuracy_mean': round(statistics.mean(references), 4),
            'distance_mean': {n: round(statistics.mean(d), 4) for n, d in distances.items()},
            'distance_max': {n: round(max(d), 4) for n, d in distances.items()}}


def cost(batch_size: int, steps: int, batches: int, rounds: int, width: float) -> dict:
    """Median seconds of one recalibration against the median seconds of one search training batch."""
    train, val = s.fake_loader(steps + 1, batch_size), s.fake_loader(steps + 1, batch_size, seed=1)
    search = h.oneshot_contender('search', h.STRATEGIES['ours: search, arch every 5'](), lambda: s.hub_space(width),
                                 train, val)
    module = search.module
    recalibration = BatchNormRecalibration(batches=batches, train_loader=lambda: s.fake_loader(batches, batch_size,
                                                                                                seed=2),
                                           seed=lambda: 0)
    search.fit_once(2)
    recalibration_times = []
    for _ in range(rounds):
        search.fit_once(steps)
        started = time.perf_counter()
        with recalibration.applied(module, module.arch.argmax_selections()):
            pass
        recalibration_times.append(time.perf_counter() - started)
    step = statistics.median(search.times[1:]) / steps
    seconds = statistics.median(recalibration_times)
    return {'batch_size': batch_size, 'batches': batches, 'rounds': rounds, 'search_step_ms': round(1000 * step, 2),
            'recalibration_s': round(seconds, 3), 'search_steps_equivalent': round(seconds / step, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--counts', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--pass-seeds', type=int, default=3)
    parser.add_argument('--batches', type=int, default=20, help='batches of the timed recalibration')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[32, 128])
    parser.add_argument('--steps', type=int, default=10, help='timed search batches per round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--width', type=float, default=0.35)
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('batchnorm_recalibration.py', argv)
    if args.quick:
        args.seeds, args.epochs, args.counts, args.pass_seeds = 1, 1, [1], 1
        args.batches, args.batch_sizes, args.steps, args.rounds = 2, [32], 2, 1
    result['cost'] = [cost(bs, args.steps, args.batches, args.rounds, args.width) for bs in args.batch_sizes]
    result['batches_needed'] = {name: batches_needed(name, args.seeds, args.epochs, args.counts, args.pass_seeds)
                                for name in ('DigitsConvSpace', 'quick start DigitsSpace')}
    result.update(seeds=args.seeds, epochs=args.epochs, pass_seeds=args.pass_seeds)
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
