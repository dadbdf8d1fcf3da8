"""Cost (32x32 and 128x128), peak memory and latency-table accuracy on NNI's hub MobileNetV3 space (value choices).

The space: ``MobileNetV3Space(num_labels=10)`` at NNI's defaults (the tests' hub-space test builds it the same
way and runs it on 32x32 inputs): value choices (``nni.choice``) of the stage widths, kernel sizes and expansion
ratios inside ``MutableConv2d`` and friends, a ``Repeat`` depth of 1-4 blocks per stage, and optional
squeeze-excite ``LayerChoice``s. One torch thread throughout.

1. Cost (cost.py's method, see ``_space_bench``): one epoch of ours with the architecture step off ('weight step
   only') and of our search (an architecture step every 5 batches), and of NNI 3.0's ``DARTS`` (weighted sums
   over every value; tens of times slower, so timed on ``--nni-steps`` batches per fit), against the mean of
   ``--subnets`` random frozen subnets of the space; ratios of time per batch. The same subnets are also timed
   with their convolutions trimmed as ours are (kernel taps that meet only padding dropped, exact), so that the
   search's own overhead shows apart from the trimming's gain on the 1x1 and 2x2 maps of the last stages.
2. Cost at ``--hires-resolution`` (128x128: the last stages run on 4x4 maps, where no tap of a kernel of up to 7
   meets only padding, so trimming plays no part; counted per subnet, and at 32x32 too): ours with the
   architecture step off and our search (a step every 5 batches), each pinned to the path of ``--hires-paths``
   random frozen subnets in turn (``memory.pin``), against those subnets; ``--hires-steps`` timed batches x
   ``--hires-rounds`` rounds per path (fewer than at 32x32: a step costs about 5 times more). NNI's ``DARTS``
   is not timed there (it holds about 14 GB at 32x32, 16 times the activations at 128x128).
3. Peak memory (memory.py's method): our search pinned to the path of ``--paths`` random subnets, and NNI's
   ``DARTS``, against those subnets' training: the whole process's peak, what stays allocated between steps
   (weights, gradients, optimiser state: the supernet's layers are at their largest sizes) and the per-step
   peaks.
4. The ``cpu`` latency table (``build_latency_table``, what ``Proxyless(applied_hardware='cpu', dummy_input=...)``
   builds) against the end-to-end latency of ``--archs`` random frozen subnets measured by the package's ``cpu``
   predictor (latency_accuracy.py's method, the median of ``--latency-builds`` fresh tables): how many are within
   10%, the median and largest error.

``--quick`` runs the tests' small variant of the space (widths x0.75/1/1.5, expansions 4/6), without NNI's DARTS,
the second timing at 32x32 on one path.
Run: ``python benchmarks/mobilenet_space.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import _harness as h
import _space_bench as bench
import _spaces as s
from latency_accuracy import accuracy

OURS = ('ours: weight step only', 'ours: search, arch every 5')
NNI = 'NNI DARTS: search'
STRATEGIES = {name: h.STRATEGIES[name] for name in (*OURS, NNI)}
SMALL = functools.partial(s.mobilenet_space, width_multipliers=(0.75, 1, 1.5), expand_ratios=(4, 6))


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=10, help='timed batches per fit (a multiple of 5)')
    parser.add_argument('--nni-steps', type=int, default=2, help="timed batches per fit of NNI's DARTS")
    parser.add_argument('--no-nni-timing', action='store_true',
                        help="leave NNI's DARTS out of the timed fits (they hold about 14 GB at batch 32)")
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--subnets', type=int, default=8)
    parser.add_argument('--hires-resolution', type=int, default=128, help='input size of the second timing')
    parser.add_argument('--hires-steps', type=int, default=5, help='timed batches per fit there (a multiple of 5)')
    parser.add_argument('--hires-rounds', type=int, default=3)
    parser.add_argument('--hires-paths', type=int, default=4, help='random subnet paths the searches are pinned to')
    parser.add_argument('--memory-steps', type=int, default=5)
    parser.add_argument('--paths', type=int, default=4)
    parser.add_argument('--archs', type=int, default=20)
    parser.add_argument('--latency-rounds', type=int, default=9, help="round-robin timings of the subnets")
    parser.add_argument('--latency-builds', type=int, default=3,
                        help="fresh cpu tables, each followed by the subnets' timing")
    parser.add_argument('--latency-only', action='store_true',
                        help="measure only the cpu table's accuracy, into the existing --json file's 'latency'")
    bench.add_child_arguments(parser)
    args = parser.parse_args(argv)
    space = SMALL if args.quick else s.mobilenet_space
    if args.child:
        print(json.dumps(bench.child('mobilenet_space.py', space, STRATEGIES, args)))
        return {}
    if args.latency_only:
        return _latency_only(args)
    started, result = time.perf_counter(), h.start('mobilenet_space.py', argv)
    strategies, memory_names = STRATEGIES, [*OURS, NNI]
    if args.quick:
        args.steps, args.rounds, args.subnets, args.memory_steps, args.paths = 5, 1, 2, 2, 1
        args.hires_resolution, args.hires_rounds, args.hires_paths = 32, 1, 1
        args.archs, args.latency_rounds, args.latency_builds = 3, 1, 1
        strategies, memory_names = {name: STRATEGIES[name] for name in OURS}, list(OURS)
    if args.no_nni_timing:
        strategies = {name: STRATEGIES[name] for name in OURS}
        result['not_timed'] = {NNI: 'left out of the timed fits (--no-nni-timing): they hold about 14 GB at batch 32'}
    result['space'] = (f'hub MobileNetV3Space{" (small variant)" if args.quick else " at its defaults"}, 32x32 '
                       f'inputs, 10 classes, batch {args.batch_size}, SGD lr 0.05')
    result['cost'] = bench.cost(space, strategies, args.batch_size, args.steps, args.rounds, args.subnets,
                                slow={NNI: args.nni_steps}, trimmed=True)
    bench.release_memory()  # the timed fits' supernets (NNI's DARTS: gigabytes) before the next ones
    result['cost_hires'] = bench.pinned_cost(space, {name: STRATEGIES[name] for name in OURS}, args.batch_size,
                                             args.hires_steps, args.hires_rounds, args.hires_paths,
                                             args.hires_resolution)
    bench.release_memory()  # before the memory children start
    result['memory'] = bench.peak_memory(__file__, space, memory_names, args.batch_size, args.memory_steps,
                                         args.paths, 2, unpinned=(NNI,), options=['--quick'] if args.quick else [])
    result['latency'] = accuracy(space(), (1, 3, 32, 32), args.archs, args.latency_rounds,
                                 args.latency_builds)
    return h.finish(result, args.json, started)


def _latency_only(args) -> dict:
    """The cpu table's accuracy alone, replacing ``latency`` in the results file (the rest is kept)."""
    started, latency = time.perf_counter(), h.start('mobilenet_space.py', ['--latency-only'])
    latency.update(accuracy(s.mobilenet_space(), (1, 3, 32, 32), args.archs, args.latency_rounds,
                            args.latency_builds))
    latency['wall_seconds'] = round(time.perf_counter() - started, 1)
    result = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else {}
    result['latency'] = latency
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + '\n')
    return result


if __name__ == '__main__':
    main()
