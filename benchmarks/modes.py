"""REINFORCE against binary-gate gradients: cost per epoch on the planted digits space of the quality figures.

Space: the tests' ``PlantedSpace`` (destructive variant, plant 100; a small MLP, so the figures show the
per-step overhead of each mode more than arithmetic). Data: the tests' digits split (1000 training / 797
validation images, batch 64: 16 batches per epoch). Contenders: the planted architecture frozen (baseline),
ours with gradient updates and with REINFORCE updates (10 sampled architectures per update), each with an
architecture step after every weight step and after every fifth, and NNI 3.0's ``Proxyless``. They are
fitted round-robin in one process with one torch thread, one epoch per fit (first batch untimed), ``--rounds``
times after a warm-up fit; each figure is the median epoch time divided by the frozen subnet's.
The search quality of the two modes is in ``planted_optimum.py``. Run: ``python benchmarks/modes.py`` (``--quick``).
"""

from __future__ import annotations

import time

import _harness as h
import _spaces as s
from conftest import digits_datasets
from nni.nas.evaluator.pytorch import DataLoader
from nni_proxyless import Proxyless

_REINFORCE = dict(arch_update='reinforce', arc_learning_rate=3e-3, seed=0)

MODES = {
    'ours gradient, every 1': lambda: Proxyless(arch_update_every=1, seed=0, **h.OFFICIAL),
    'ours REINFORCE, every 1': lambda: Proxyless(arch_update_every=1, **_REINFORCE),
    'ours gradient, every 5': lambda: Proxyless(arch_update_every=5, seed=0, **h.OFFICIAL),
    'ours REINFORCE, every 5': lambda: Proxyless(arch_update_every=5, **_REINFORCE),
    'NNI Proxyless': lambda: h.STRATEGIES['NNI Proxyless: search'](),
}


def _space() -> s.PlantedSpace:
    return s.PlantedSpace(plant_seed=100, destructive=True)


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=15, help='timed batches per fit (16 batches = one epoch)')
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('modes.py', argv)
    if args.quick:
        args.rounds, args.steps = 1, 5
    train_set, val_set = digits_datasets()
    train, val = DataLoader(train_set, batch_size=64), DataLoader(val_set, batch_size=64)
    space = _space()
    frozen = h.frozen_contender('planted subnet', space.freeze(space.planted_architecture()), train)
    searches = [h.oneshot_contender(name, factory(), _space, train, val) for name, factory in MODES.items()]
    h.interleaved([frozen] + searches, rounds=args.rounds, steps=args.steps)
    result.update(space='PlantedSpace(plant_seed=100, destructive=True), digits, batch 64',
                  steps=args.steps, rounds=args.rounds, frozen_epoch_ms=round(1000 * frozen.median, 2),
                  ratios={c.name: round(c.median / frozen.median, 3) for c in searches},
                  epoch_ms={c.name: round(1000 * c.median, 2) for c in searches})
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
