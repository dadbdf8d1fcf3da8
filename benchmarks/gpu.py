"""GPU cost and peak memory of a search under fp32, bf16 and fp16, and the accuracy of a 'cuda' latency table.

On one CUDA GPU, NNI's hub ProxylessNAS space at 224x224 (10 classes; widths 1.0 and 0.35; batch sizes 128 and
64): per-step time and peak CUDA memory of training a frozen subnet, of our search (weight step only;
architecture step every 5 and every batch; every 5 with ``channels_last``) and of NNI 3.0's ``Proxyless`` and
``DARTS``, each under Lightning's ``precision='32-true'``, ``'bf16-mixed'`` and ``'16-mixed'``.

- Same computation: every search is pinned to the frozen subnet's path (a random path fixed by seed 0; the
  logits or alphas at +-10, as ``memory.py`` does), so a ratio is what the strategy adds to training that subnet.
- Data: torchvision's ``FakeData`` images (10 classes), made once and kept on the GPU; batches are read in place,
  so no decoding or host-to-device copy enters the timings.
- Time: the contenders and precisions are fitted round-robin in one process (one warm-up fit each, then
  ``--rounds`` rounds); a fit is one Lightning epoch of ``1 + steps`` batches whose first batch runs untimed; the
  GPU is synchronised at the start of the second batch and at the end of the last, so a fit's time is the wall
  time of its timed batches. Figure: median over rounds, per step; ratios to the frozen subnet at the same
  precision. NNI's search contenders (several times slower) run ``--nni-steps`` batches per fit.
- Peak memory: ``torch.cuda.max_memory_allocated`` over the timed batches (reset when they start) minus what was
  allocated then (weights, optimiser state, data): the steps' own peak; ratio to the subnet's.
- CUDA synchronisations: ``torch.cuda.set_sync_debug_mode('warn')`` over the timed batches of one fit of the
  subnet and of our search (width 0.35, batch 64): synchronising calls per step (the evaluator's own included).
- Latency: a ``'cuda'`` latency table (``build_latency_table(space, 'cuda', (1, 3, 224, 224))``, empty cache)
  against the end-to-end latency of 20 random architectures measured by the same predictor (median of 3
  round-robin rounds): the fraction within 10%, the median and largest error, Spearman's rank correlation.

The parts run in this order: the synchronisation audit, the latency table at the first width, the groups (the
larger batch first), the other latency tables; no group or round starts after ``--budget-seconds`` and no fit 40 s
later (what is skipped is recorded), and out-of-memory or failing runs are recorded and not retried, so the
script finishes in bounded time unattended.
Run: ``python benchmarks/gpu.py --out benchmarks/results/gpu.json`` (one GPU, under 8 minutes, no network; it
then redraws docs/benchmarks.md), or ``python benchmarks/gpu.py --quick`` (a CPU smoke run of seconds).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

import _harness as h
import _spaces as s
from _gpu_runs import CONTENDERS, PRECISIONS, QUICK_CONTENDERS, SUBNET, Deadline, build_runs, release
from latency_accuracy import one_build


def measure_group(args, width: float, batch: int, deadline: Deadline) -> dict:
    """Round-robin fits of every contender and precision at one width and batch size; ratios to the subnet."""
    runs, sample = build_runs(args.contenders, args.precisions, width, batch, args.resolution, args.steps,
                              args.nni_steps, args.device)
    for run in runs:
        if not deadline.hard_passed():
            run.attempt(args.warmup_steps, args.device, keep=False)
    for _ in range(args.rounds):
        if deadline.passed():
            break
        for run in runs:
            if not deadline.hard_passed():
                run.attempt(run.steps, args.device)
    rows = [run.summary() for run in runs]
    base = {r['precision']: r for r in rows if r['name'] == SUBNET}
    for row in rows:
        ref = base.get(row['precision'], {})
        row['ratio'] = _ratio(row['step_ms'], ref.get('step_ms'))
        row['ratio_to_fp32_subnet'] = _ratio(row['step_ms'], base.get('32-true', {}).get('step_ms'))
        row['peak_growth_ratio'] = _ratio(row['peak_growth_mb'], ref.get('peak_growth_mb'))
    del runs
    release()
    return {'width': width, 'batch_size': batch, 'resolution': args.resolution, 'steps': args.steps,
            'nni_steps': args.nni_steps, 'rounds_planned': args.rounds, 'path': sample, 'runs': rows}


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else round(value / base, 3)


def sync_audit(args) -> dict:
    """Synchronising CUDA calls per timed step: the frozen subnet against our search (same evaluator)."""
    names = [SUBNET, 'ours: weight step only', 'ours: search, arch every 5']
    runs, _ = build_runs(names, ['32-true', '16-mixed'], 0.35, 64, args.resolution, 10, 10, args.device)
    result = []
    for run in runs:
        run.fit(2, args.device, keep=False)
        meter = run.fit(10, args.device, keep=False, sync_audit=True)
        result.append({'name': run.name, 'precision': run.precision, 'syncs_per_step': len(meter.syncs) / 10,
                       'examples': sorted({str(w.message).splitlines()[0][:120] for w in meter.syncs})[:3]})
    del runs
    release()
    return {'width': 0.35, 'batch_size': 64, 'steps': 10, 'runs': result}


def latency_accuracy(args, width: float) -> dict:
    """A latency table on ``args.hardware`` against measured end-to-end latency of random architectures."""
    shape = (1, 3, args.resolution, args.resolution)
    options = {'warmup': 0, 'repeats': 1} if args.quick else {}  # a smoke run times each module once
    return {'hardware': args.hardware, 'width': width, 'input': list(shape),
            **one_build(s.hub_space(width), shape, args.archs, 1 if args.quick else 3, args.hardware, **options)}


def gpu_line() -> dict:
    """The GPU, CUDA and cuDNN versions and the TF32 switches (what fp32 means on this GPU)."""
    if not torch.cuda.is_available():
        return {'device': 'cpu'}
    return {'device': torch.cuda.get_device_name(), 'cuda': torch.version.cuda,
            'cudnn': torch.backends.cudnn.version(), 'memory_gib': round(torch.cuda.mem_get_info()[1] / 2 ** 30, 1),
            'float32_matmul_precision': torch.get_float32_matmul_precision(),
            'tf32_matmul': torch.backends.cuda.matmul.allow_tf32, 'tf32_cudnn': torch.backends.cudnn.allow_tf32,
            'cudnn_benchmark': torch.backends.cudnn.benchmark}


def _arguments(argv: list[str] | None):
    parser = h.parser(__doc__)
    parser.add_argument('--out', dest='json', help='write the figures to this JSON file (alias of --json)')
    parser.add_argument('--markdown', help='page to redraw from the results folder of --out (full run default: '
                                           'docs/benchmarks.md; --quick: none)')
    parser.add_argument('--plots', help='folder of the page\'s plots (default: docs/benchmarks)')
    parser.add_argument('--widths', type=float, nargs='+', default=[1.0, 0.35])
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[128, 64])
    parser.add_argument('--precisions', nargs='+', default=PRECISIONS, choices=PRECISIONS)
    parser.add_argument('--contenders', nargs='+', default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument('--resolution', type=int, default=224)
    parser.add_argument('--steps', type=int, default=10, help='timed batches per fit (a multiple of 5)')
    parser.add_argument('--nni-steps', type=int, default=5, help="timed batches per fit of NNI's strategies")
    parser.add_argument('--warmup-steps', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--archs', type=int, default=20, help='random architectures for the latency table')
    parser.add_argument('--budget-seconds', type=float, default=400,
                        help='no group or round starts after this, no fit 40 s later')
    args = parser.parse_args(argv)
    args.device, args.hardware = 'cuda', 'cuda'
    if args.quick:
        args.device, args.hardware, args.widths, args.batch_sizes, args.resolution = 'cpu', 'cpu', [0.35], [4], 32
        args.steps, args.nni_steps, args.warmup_steps, args.rounds, args.archs = 2, 1, 1, 1, 3
        args.contenders = [c for c in args.contenders if c in QUICK_CONTENDERS]
    elif not torch.cuda.is_available():
        parser.error('no CUDA device: this benchmark needs a GPU (--quick runs a CPU smoke test).')
    if SUBNET not in args.contenders:
        args.contenders.insert(0, SUBNET)
    return args


def _header(argv: list[str] | None) -> dict:
    result = h.start('gpu.py', argv)  # one torch thread, as every CPU timing of the benchmarks
    if torch.cuda.is_available() and '--quick' not in (sys.argv[1:] if argv is None else argv):
        torch.set_num_threads(min(8, os.cpu_count() or 1))  # the host only launches kernels and builds models
    given = list(sys.argv[1:] if argv is None else argv)
    for flag in ('--out', '--json', '--markdown', '--plots'):  # where results go does not reproduce them
        while flag in given:
            del given[given.index(flag):given.index(flag) + 2]
    result['command'] = f'python benchmarks/gpu.py {" ".join(given)}'.strip()
    result['machine'] = h.machine()
    result.update(gpu=gpu_line(), python=platform.python_version())
    return result


def main(argv: list[str] | None = None) -> dict:
    args = _arguments(argv)
    started, result = time.perf_counter(), _header(argv)
    deadline = Deadline(args.budget_seconds)
    result.update(quick=args.quick, space=f'hub ProxylessNAS, {args.resolution}x{args.resolution}, 10 classes, '
                  'SGD lr 0.05 (NNI Classification)', precisions=args.precisions, groups=[], latency=[],
                  syncs=None, skipped=[])
    plan: list[tuple[str, Callable[[], None]]] = []
    if args.device == 'cuda':
        plan.append(('sync audit', lambda: result.update(syncs=sync_audit(args))))
    plan.append((f'latency width {args.widths[0]}', lambda: result['latency'].append(
        latency_accuracy(args, args.widths[0]))))
    for batch in args.batch_sizes:
        for width in args.widths:
            plan.append((f'width {width}, batch {batch}',
                         lambda w=width, b=batch: result['groups'].append(measure_group(args, w, b, deadline))))
    plan += [(f'latency width {w}', lambda w=w: result['latency'].append(latency_accuracy(args, w)))
             for w in args.widths[1:]]
    for name, work in plan:
        if deadline.passed():
            result['skipped'].append(f'{name}: time budget of {args.budget_seconds:.0f} s spent')
            continue
        print(f'gpu.py: {name} ({time.perf_counter() - started:.0f} s)', file=sys.stderr)
        try:
            work()
        except Exception as error:  # a failing part is recorded; the others still run
            result['skipped'].append(f'{name}: {type(error).__name__}: {str(error)[:300]}')
            print(f'gpu.py: {name} failed: {error!r}', file=sys.stderr)
            release()
    h.finish(result, args.json, started)
    _redraw(args)
    return result


def _redraw(args) -> None:
    """Redraw the benchmarks page from the folder holding the JSON (a full run: docs/benchmarks.md)."""
    markdown = args.markdown or (None if args.quick else str(s.ROOT / 'docs' / 'benchmarks.md'))
    if not markdown or not args.json:
        return
    import report
    results = Path(args.json).parent
    if Path(args.json).name != 'gpu.json':
        print(f'gpu.py: the page reads gpu.json; {args.json} is not redrawn into {markdown}', file=sys.stderr)
        return
    report.render(results, Path(markdown), Path(args.plots or s.ROOT / 'docs' / 'benchmarks'))
    print(f'gpu.py: redrew {markdown} from {results}', file=sys.stderr)


if __name__ == '__main__':
    main()
