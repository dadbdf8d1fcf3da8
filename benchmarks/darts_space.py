"""Cost and peak memory of a search on NNI's hub DARTS cell space (CIFAR, width 16, 8 cells, 32x32).

The space: ``DARTS(width=16, num_cells=8, dataset='cifar')`` from ``nni.nas.hub.pytorch``, as the tests' hub-space
test builds it: NNI ``Cell``s whose nodes each pick two inputs and an operation of eight per input. One torch
thread throughout.

1. Cost (cost.py's method, see ``_space_bench``): one epoch of our search (an architecture step every 5 batches;
   and with the architecture step off), of NNI 3.0's ``DARTS`` and of its ``GumbelDARTS``, against the mean of
   ``--subnets`` random frozen subnets of the space (typical cells: every node's inputs and operations drawn
   uniformly).
2. Peak memory (memory.py's method): each search (ours pinned to the path of ``--paths`` random subnets) against
   those subnets' training.

``--quick`` runs a small variant (width 8, 3 cells) without NNI's strategies.
Run: ``python benchmarks/darts_space.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import functools
import json
import time

import _harness as h
import _space_bench as bench
import _spaces as s

STRATEGIES = {
    'ours: weight step only': h.STRATEGIES['ours: weight step only'],
    'ours: search, arch every 5': h.STRATEGIES['ours: search, arch every 5'],
    'NNI DARTS: search': h.STRATEGIES['NNI DARTS: search'],
    'NNI GumbelDARTS: search': lambda: h.nni_strategy('GumbelDARTS')(),
}
NNI = ('NNI DARTS: search', 'NNI GumbelDARTS: search')
MEMORY = ['ours: search, arch every 5', *NNI]
SMALL = functools.partial(s.darts_space, width=8, num_cells=3)


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=10, help='timed batches per fit (a multiple of 5)')
    parser.add_argument('--nni-steps', type=int, default=2, help="timed batches per fit of NNI's strategies")
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--subnets', type=int, default=4)
    parser.add_argument('--memory-steps', type=int, default=5)
    parser.add_argument('--paths', type=int, default=2)
    bench.add_child_arguments(parser)
    args = parser.parse_args(argv)
    space = SMALL if args.quick else s.darts_space
    if args.child:
        print(json.dumps(bench.child('darts_space.py', space, STRATEGIES, args)))
        return {}
    started, result = time.perf_counter(), h.start('darts_space.py', argv)
    strategies, memory_names = STRATEGIES, MEMORY
    if args.quick:
        args.steps, args.rounds, args.subnets, args.memory_steps, args.paths = 5, 1, 2, 2, 1
        strategies = {name: make for name, make in STRATEGIES.items() if name not in NNI}
        memory_names = [name for name in MEMORY if name not in NNI]
    result['space'] = (f'hub DARTS (cifar, {"width 8, 3 cells" if args.quick else "width 16, 8 cells"}), 32x32 '
                       f'inputs, 10 classes, batch {args.batch_size}, SGD lr 0.05')
    result['cost'] = bench.cost(space, strategies, args.batch_size, args.steps, args.rounds, args.subnets,
                                slow=dict.fromkeys(NNI, args.nni_steps))
    bench.release_memory()  # the timed fits' supernets (NNI's DARTS: gigabytes) before the children start
    result['memory'] = bench.peak_memory(__file__, space, memory_names, args.batch_size, args.memory_steps,
                                         args.paths, 2, unpinned=NNI, options=['--quick'] if args.quick else [])
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
