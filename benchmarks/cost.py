"""Cost of a search step against training a frozen subnet, on NNI's hub ProxylessNAS space.

Contenders are fitted round-robin for ``--steps`` batches each, ``--rounds`` times, in one process with one
torch thread; each figure is the median over rounds of the training batches' wall time (set-up excluded),
divided by the same figure for the frozen subnets (the mean over ``--subnets`` random architectures, each
timed the same way). Run: ``python benchmarks/cost.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys

import torch

import _harness as h
from nni_proxyless import Proxyless


def _random_subnet(space, seed: int) -> torch.nn.Module:
    rng = random.Random(seed)
    sample = {}
    for label, mutable in space.simplify().items():
        sample[label] = rng.choice(list(mutable.values))
    return space.freeze(sample)


def _contenders(args) -> tuple[list[h.Contender], list[h.Contender]]:
    from nni.nas.oneshot.pytorch.strategy import DARTS, Proxyless as NNIProxyless
    train = h.fake_loader(args.steps, args.batch_size)
    val = h.fake_loader(args.steps, args.batch_size, seed=1)
    space = lambda: h.hub_space(args.width)  # noqa: E731
    frozen = [h.frozen_contender(f'subnet {i}', _random_subnet(space(), i), train) for i in range(args.subnets)]
    ours = [
        h.oneshot_contender('weight-only', Proxyless(warmup_epochs=10 ** 6, seed=0), space, train, val),
        h.oneshot_contender('search, every 5', Proxyless(arch_update_every=5, seed=0), space, train, val),
        h.oneshot_contender('search, every 1', Proxyless(arch_update_every=1, seed=0), space, train, val),
        h.oneshot_contender('search full_v2, every 5', Proxyless(arch_update_every=5, binary_mode='full_v2', seed=0),
                            space, train, val),
        h.oneshot_contender('NNI Proxyless', NNIProxyless(), space, train, val),
    ]
    if not args.no_darts:
        ours.append(h.oneshot_contender('NNI DARTS', DARTS(), space, train, val))
    return frozen, ours


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--width', type=float, default=0.35)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--subnets', type=int, default=4)
    parser.add_argument('--no-darts', action='store_true')
    parser.add_argument('--quick', action='store_true', help='tiny run to check the script works')
    parser.add_argument('--json', help='write the figures here')
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.subnets, args.no_darts = 5, 1, 1, True
    torch.set_num_threads(1)
    torch.manual_seed(0)
    frozen, others = _contenders(args)
    h.interleaved(frozen + others, rounds=args.rounds, steps=args.steps)
    base = statistics.mean(c.median for c in frozen)
    result = {'machine': h.machine(), 'command': 'python benchmarks/cost.py ' + ' '.join(argv or sys.argv[1:]),
              'batch_size': args.batch_size, 'steps': args.steps, 'rounds': args.rounds,
              'frozen_step_ms': 1000 * base / args.steps,
              'ratios': {c.name: c.median / base for c in others}}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
