"""The ground truth of the searcher comparison: every architecture of ``DigitsCellSpace`` trained alone.

Not part of ``make bench``: it writes ``benchmarks/results/ground_truth.json``, which is committed and which
``truth_search.py`` reads. Regenerate it (about 30 minutes on one core) with
``python benchmarks/ground_truth.py --json benchmarks/results/ground_truth.json``.

Space: ``DigitsCellSpace`` (a NAS-Bench-201-style cell of three edges, five operations each: 125
architectures). Data: scikit-learn's digits split once (``digits_tensors``, seed 0) into search-train 900,
search-val 400 and test 497 images. Every architecture is trained from scratch on search-train, with
``--seeds`` seeds, by the full protocol: ``--epochs`` epochs of batch 64, SGD (lr 0.1, Nesterov momentum 0.9,
weight decay 5e-4, cosine decay to zero; NAS-Bench-201's recipe). We keep its search-val and test accuracy.
Its true accuracy is the mean test accuracy over the seeds: the test part is never shown to a searcher (the
searchers train weights on search-train and choose with search-val). Each architecture and seed is also trained
by the short protocol (the same recipe over ``--short-epochs`` epochs, its own cosine schedule), whose
search-val accuracy is what random search with short training sees.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

import _harness as h
import _spaces as s

BATCH_SIZE = 64
RECIPE = 'batch 64, SGD lr 0.1, Nesterov momentum 0.9, weight decay 5e-4, cosine to zero'


def _accuracy(model: nn.Module, part: tuple[torch.Tensor, torch.Tensor]) -> float:
    with torch.no_grad():
        return (model(part[0]).argmax(1) == part[1]).float().mean().item()


def train_alone(arch: dict, data: dict, epochs: int, seed: int) -> dict[str, float]:
    """Train ``arch`` from scratch on search-train by the protocol; its search-val and test accuracy."""
    torch.manual_seed(seed)
    model = s.DigitsCellSpace().freeze(arch)
    x, y = data['train']
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    batches = (len(x) + BATCH_SIZE - 1) // BATCH_SIZE
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * batches)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=order).split(BATCH_SIZE):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
            schedule.step()
    model.eval()
    return {'val': _accuracy(model, data['val']), 'test': _accuracy(model, data['test'])}


def one_architecture(arch: dict, data: dict, args) -> dict:
    """Both protocols over every seed; the mean test accuracy of the full one is the true accuracy."""
    full = [train_alone(arch, data, args.epochs, seed) for seed in range(args.seeds)]
    short = [train_alone(arch, data, args.short_epochs, seed) for seed in range(args.seeds)]
    test = [round(run['test'], 4) for run in full]
    return {'arch': arch, 'true_accuracy': round(statistics.mean(test), 4), 'test': test,
            'val': [round(run['val'], 4) for run in full], 'short_val': [round(run['val'], 4) for run in short]}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--short-epochs', type=int, default=5)
    parser.add_argument('--archs', type=int, default=None, help='train only the first ARCHS architectures')
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('ground_truth.py', argv)
    if args.quick:
        args.seeds, args.epochs, args.short_epochs, args.archs = 2, 1, 1, 4
    data, archs = s.digits_tensors(), s.all_samples(s.DigitsCellSpace())
    rows = []
    for i, arch in enumerate(archs[:args.archs]):
        rows.append(one_architecture(arch, data, args))
        print(f'{i + 1}/{len(archs[:args.archs])} {arch}: {rows[-1]["true_accuracy"]:.4f}', flush=True)
    result.update(space='DigitsCellSpace: a three-edge NAS-Bench-201-style cell (none, skip_connect, nor_conv_1x1, '
                        'nor_conv_3x3, avg_pool_3x3), 16 channels, 8x8 digits',
                  split={part: len(tensors[1]) for part, tensors in data.items()}, recipe=RECIPE, seeds=args.seeds,
                  epochs=args.epochs, short_epochs=args.short_epochs, architectures=rows)
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
