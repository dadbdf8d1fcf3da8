"""How the cost of a search step grows with the number of candidates per choice (2, 4, 8 by default).

Space: ``ScalingSpace(N)``, four LayerChoices of N equal-cost 3x3 conv-BN-ReLU candidates (16 channels) on
3x32x32 inputs, batch ``--batch-size``. Since all candidates cost the same, every frozen subnet costs the same,
and a ratio says how much of the supernet a step runs. For each N, one group of contenders (``--subnets``
frozen random subnets, ours weight step only and full search at ``arch_update_every=5``, NNI 3.0's
``Proxyless`` and ``DARTS``) is fitted round-robin in one process with one torch thread, ``--rounds`` times
after a warm-up fit; each figure is the median epoch time over rounds (first batch of every fit untimed)
divided by the frozen subnets' mean. ProxylessNAS's claim is that the ratio stays flat in N; DARTS's grows
about linearly. Run: ``python benchmarks/scaling.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import statistics
import time

import _harness as h
import _spaces as s

CONTENDERS = ['ours: weight step only', 'ours: search, arch every 5', 'NNI Proxyless: search', 'NNI DARTS: search']


def measure(candidates: int, args) -> dict:
    """Per-epoch time ratios to the frozen subnets for one number of candidates."""
    train = s.fake_loader(args.steps + 1, args.batch_size)
    val = s.fake_loader(args.steps + 1, args.batch_size, seed=1)
    space = s.ScalingSpace(candidates)
    frozen = [h.frozen_contender(f'subnet {i}', space.freeze(s.random_sample(space, i)), train)
              for i in range(args.subnets)]
    searches = [h.oneshot_contender(name, h.STRATEGIES[name](), lambda: s.ScalingSpace(candidates), train, val)
                for name in args.contenders]
    h.interleaved(frozen + searches, rounds=args.rounds, steps=args.steps)
    base = statistics.mean(c.median for c in frozen)
    return {'candidates': candidates, 'frozen_step_ms': round(1000 * base / args.steps, 2),
            'ratios': {c.name: round(c.median / base, 3) for c in searches}}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--candidates', type=int, nargs='+', default=[2, 4, 8])
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=10, help='a multiple of 5 (see cost.py)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--subnets', type=int, default=2)
    parser.add_argument('--contenders', nargs='+', default=CONTENDERS, choices=list(h.STRATEGIES))
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('scaling.py', argv)
    if args.quick:
        args.candidates, args.steps, args.rounds, args.subnets = [2, 4], 2, 1, 1
        args.contenders = ['ours: search, arch every 5', 'NNI DARTS: search']
    result.update(space='ScalingSpace: 4 LayerChoices of N equal 3x3 conv-BN-ReLU (16 ch), 32x32 inputs',
                  batch_size=args.batch_size, steps=args.steps, rounds=args.rounds,
                  by_candidates=[measure(n, args) for n in args.candidates])
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
