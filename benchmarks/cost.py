"""Cost of a search step against training a frozen subnet, on NNI's hub ProxylessNAS space (width 0.35, 32x32).

What is timed: the training batches of one Lightning epoch (one weight step per batch, plus the architecture
steps the strategy does in that epoch), set-up excluded, the first batch of every fit run but not timed.
Contenders (ours in several settings, NNI 3.0's built-in ``Proxyless`` and ``DARTS``, and ``--subnets`` random
frozen subnets of the same space trained by the same evaluator) are fitted round-robin in one process with one
torch thread, ``--rounds`` times after one warm-up fit each. Each figure is the median over rounds, divided by
the mean of the frozen subnets' medians. Batch size 128 runs fewer steps (``--steps`` x 32 / batch, a multiple
of 5 so that 'every 5' does the same number of architecture steps in every fit, at least 5).
Run: ``python benchmarks/cost.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import statistics
import time

import _harness as h
import _spaces as s


def _contenders(names: list[str], batch_size: int, steps: int, subnets: int, width: float):
    train = s.fake_loader(steps + 1, batch_size)
    val = s.fake_loader(steps + 1, batch_size, seed=1)
    space = s.hub_space(width)
    frozen = [h.frozen_contender(f'subnet {i}', space.freeze(s.random_sample(space, i)), train)
              for i in range(subnets)]
    searches = [h.oneshot_contender(name, h.STRATEGIES[name](), lambda: s.hub_space(width), train, val)
                for name in names]
    return frozen, searches


def _steps_for(batch_size: int, steps: int) -> int:
    """Fewer steps at larger batches, a multiple of 5 (so 'every 5' does the same number of arch steps per fit)."""
    return max(5, 5 * round(steps * 32 / batch_size / 5))


def measure(names: list[str], batch_size: int, steps: int, rounds: int, subnets: int, width: float) -> dict:
    """Per-epoch time ratios to the frozen subnets at one batch size."""
    frozen, searches = _contenders(names, batch_size, steps, subnets, width)
    h.interleaved(frozen + searches, rounds=rounds, steps=steps)
    base = statistics.mean(c.median for c in frozen)
    return {'batch_size': batch_size, 'steps': steps, 'rounds': rounds, 'subnets': subnets,
            'frozen_step_ms': round(1000 * base / steps, 2),
            'frozen_spread': round(max(c.median for c in frozen) / min(c.median for c in frozen), 3),
            'ratios': {c.name: round(c.median / base, 3) for c in searches},
            'step_ms': {c.name: round(1000 * c.median / steps, 2) for c in searches}}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--width', type=float, default=0.35)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[32, 128])
    parser.add_argument('--steps', type=int, default=10, help='timed batches per fit at batch size 32')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--subnets', type=int, default=6)
    parser.add_argument('--only', default='', help='|-separated parts of contender names to keep')
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('cost.py', argv)
    if args.quick:
        args.batch_sizes, args.steps, args.rounds, args.subnets = [32], 5, 1, 2
        args.only = args.only or 'weight step only|arch every 5'
    names = h.strategy_names(args.only)
    result['space'] = f'hub ProxylessNAS width {args.width}, 32x32 inputs, 10 classes, SGD lr 0.05'
    result['by_batch_size'] = [measure(names, bs, _steps_for(bs, args.steps), args.rounds, args.subnets, args.width)
                               for bs in args.batch_sizes]
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
