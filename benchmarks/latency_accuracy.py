"""How well a 'cpu' latency table predicts measured end-to-end latency, and how long tables take to build.

For ``--archs`` random architectures of NNI's hub ProxylessNAS space (``--width``, ``--resolution``, one
thread), the table's prediction is compared with the frozen subnet's measured latency (median of
``--rounds`` round-robin measurements, each itself a median of repeats). Build times use a fresh cache.
Run: ``python benchmarks/latency_accuracy.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time

import torch
from scipy.stats import spearmanr

import _harness as h
from nni_proxyless.latency import ModuleCall, build_latency_table
from nni_proxyless.latency.measure import MeasuredPredictor


def _build_seconds(width: float, resolution: int) -> float:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        build_latency_table(h.hub_space(width), 'cpu', (1, 3, resolution, resolution), cache_dir=cache)
        return time.perf_counter() - start


def _accuracy(args) -> dict:
    space = h.hub_space(args.width)
    shape = (1, 3, args.resolution, args.resolution)
    with tempfile.TemporaryDirectory() as cache:
        table = build_latency_table(space, 'cpu', shape, cache_dir=cache)
    rng, mutables = random.Random(0), space.simplify()
    archs = [{label: rng.choice(list(m.values)) for label, m in mutables.items()} for _ in range(args.archs)]
    nets = [space.freeze(arch).eval() for arch in archs]
    meter, x = MeasuredPredictor('cpu', cache_dir=False), torch.randn(shape)
    samples: list[list[float]] = [[] for _ in archs]
    for _ in range(args.rounds):
        for i, net in enumerate(nets):
            samples[i].append(meter.predict([ModuleCall(net, (x,), {})])[0])
    measured = [statistics.median(s) for s in samples]
    predicted = [table.predict(arch) for arch in archs]
    errors = [(p - m) / m for p, m in zip(predicted, measured)]
    return {'archs': len(archs), 'within_10_percent': sum(abs(e) <= 0.10 for e in errors) / len(errors),
            'median_abs_error': statistics.median(abs(e) for e in errors),
            'max_abs_error': max(abs(e) for e in errors),
            'spearman': spearmanr(predicted, measured).statistic,
            'measured_ms': [round(m, 3) for m in measured], 'predicted_ms': [round(p, 3) for p in predicted]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--width', type=float, default=0.5)
    parser.add_argument('--resolution', type=int, default=64)
    parser.add_argument('--archs', type=int, default=25)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    if args.quick:
        args.archs, args.rounds = 3, 1
    torch.set_num_threads(1)
    result = {'machine': h.machine(), 'command': 'python benchmarks/latency_accuracy.py ' + ' '.join(argv or sys.argv[1:]),
              'space': f'hub ProxylessNAS width {args.width}, {args.resolution}x{args.resolution}, 1 thread',
              **_accuracy(args),
              'build_seconds': {f'width {args.width}, {args.resolution}px': _build_seconds(args.width, args.resolution)}}
    if not args.quick:
        result['build_seconds']['width 1.0, 224px'] = _build_seconds(1.0, 224)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
