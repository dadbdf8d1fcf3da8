"""Search quality on planted-optimum spaces: is the planted architecture exported, and how fast does it settle?

The tests' ``PlantedSpace`` (digits, three residual choices of three candidates; one candidate per choice
carries the signal, the others add nothing or noise, or with ``destructive=True`` cancel the stream). For each
method and ``--seeds`` seeds (plant ``100 + seed``, ``torch.manual_seed(seed)``): a search of ``--epochs``
epochs through ``NasExperiment`` with the tests' digits evaluator (1000 training / 797 validation images, batch
64, Adam 3e-3), then ``export_top_models(top_k=1)``. We report how often the export is the planted
architecture; for NNI's ``Proxyless``, whose export is a sample from the softmax, also how often the most
probable value of every label is (read from its ``export_probs()``). A callback records every label's
probabilities before training and after each epoch: the entropy curve, the epoch after which the most probable
architecture no longer changes, and the fraction of seeds whose most probable architecture is the planted one.
Not a timing. Run: ``python benchmarks/planted_optimum.py`` (``--quick`` for a smoke run).
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
from conftest import digits_evaluator, run_search
from nni_proxyless import Proxyless

_REINFORCE = dict(arch_update='reinforce', arch_update_every=1, arc_learning_rate=3e-3)

# The gradient mode at the official architecture learning rate (the default 'auto' is in short_budget.py).
_GRADIENT = dict(arch_update_every=1, arc_learning_rate=1e-3)

# name -> (destructive planted space?, strategy factory of the seed)
METHODS = {
    'ours gradient': (False, lambda seed: Proxyless(**_GRADIENT, seed=seed)),
    'ours gradient, full_v2': (False, lambda seed: Proxyless(**_GRADIENT, binary_mode='full_v2', seed=seed)),
    'ours gradient, destructive': (True, lambda seed: Proxyless(**_GRADIENT, seed=seed)),
    'ours REINFORCE, destructive': (True, lambda seed: Proxyless(**_REINFORCE, seed=seed)),
    'ours REINFORCE': (False, lambda seed: Proxyless(**_REINFORCE, seed=seed)),
    'NNI Proxyless': (False, lambda seed: h.STRATEGIES['NNI Proxyless: search']()),
    'NNI Proxyless, arc lr 1e-3': (False, lambda seed: h.nni_strategy('Proxyless')(arc_learning_rate=1e-3)),
    'NNI Proxyless, destructive': (True, lambda seed: h.STRATEGIES['NNI Proxyless: search']()),
}


def one_search(method: str, seed: int, epochs: int, workdir: Path) -> dict:
    """One search; the export, the argmax and the recorded distributions against the planted architecture."""
    destructive, factory = METHODS[method]
    torch.manual_seed(seed)
    space = s.PlantedSpace(plant_seed=100 + seed, destructive=destructive)
    recorder = h.DistributionRecorder()
    exp = run_search(space, factory(seed), digits_evaluator(epochs=epochs, callbacks=[recorder]), workdir)
    planted = space.planted_architecture()
    exported = dict(exp.export_top_models(top_k=1, formatter='dict')[0])
    return {'seed': seed, 'exported_planted': exported == planted, 'argmax_planted': recorder.argmaxes()[-1] == planted,
            'settled_at': recorder.settled_at(), 'entropy': [round(e, 6) for e in recorder.entropies()],
            'argmax_planted_by_epoch': [a == planted for a in recorder.argmaxes()]}


def summarise(runs: list[dict], epochs: int) -> dict:
    """Counts over seeds, the median settling epoch, the mean entropy curve (as a fraction of its maximum)."""
    top = 3 * math.log(3)  # three labels of three candidates
    return {'seeds': len(runs), 'exported_planted': sum(r['exported_planted'] for r in runs),
            'argmax_planted': sum(r['argmax_planted'] for r in runs),
            'settled_at_median': statistics.median(r['settled_at'] for r in runs),
            'settled_at': [r['settled_at'] for r in runs],
            'entropy_fraction': [round(statistics.mean(r['entropy'][e] for r in runs) / top, 4)
                                 for e in range(epochs + 1)],
            'argmax_planted_fraction': [round(statistics.mean(r['argmax_planted_by_epoch'][e] for r in runs), 3)
                                        for e in range(epochs + 1)],
            'runs': runs}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--seeds', type=int, default=10)
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('planted_optimum.py', argv)
    if args.quick:
        args.seeds, args.epochs = 2, 2
        args.methods = ['ours gradient', 'ours REINFORCE, destructive', 'NNI Proxyless']
    result.update(seeds=args.seeds, epochs=args.epochs, methods={})
    with tempfile.TemporaryDirectory() as workdir:
        for method in args.methods:
            runs = [one_search(method, seed, args.epochs, Path(workdir) / f'{len(result["methods"])}-{seed}')
                    for seed in range(args.seeds)]
            result['methods'][method] = summarise(runs, args.epochs)
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
