"""The ground truths of the searcher comparison: every architecture of a small digits space trained alone.

Not part of ``make bench``: it writes the tables ``truth_search.py`` reads, which are committed. Regenerate them
(each about 30 minutes on one core) with
``python benchmarks/ground_truth.py --space cell --json benchmarks/results/ground_truth.json`` and
``python benchmarks/ground_truth.py --space value --seeds 2 --json benchmarks/results/ground_truth_value.json``.

Spaces: ``cell``, ``DigitsCellSpace`` (a NAS-Bench-201-style cell of three edges, five operations each: 125
architectures); ``value``, ``DigitsValueSpace`` (value choices: a shared width, twice it through an expression,
a kernel size per block, a depth: 117 distinct architectures). Every row also records the architecture's
parameters and MFLOPs (``torch.utils.flop_counter`` at one 8x8 image, the unit of ``applied_hardware='flops'``).
Data: scikit-learn's digits split once (``digits_tensors``, seed 0) into search-train 900,
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


SPACES = {
    'cell': ('DigitsCellSpace: a three-edge NAS-Bench-201-style cell (none, skip_connect, nor_conv_1x1, '
             'nor_conv_3x3, avg_pool_3x3), 16 channels, 8x8 digits', s.DigitsCellSpace,
             lambda: s.all_samples(s.DigitsCellSpace())),
    'value': ('DigitsValueSpace: width 8/16/24 shared by every layer (twice it through an expression), depth 1-3, '
              'kernel 1/3/5 per block, 8x8 digits', s.DigitsValueSpace, s.DigitsValueSpace.architectures),
}


def size_of(space_class, arch: dict) -> dict[str, float]:
    """Parameters and MFLOPs (torch's flop counter, one 8x8 image, eval mode) of ``arch``."""
    from torch.utils.flop_counter import FlopCounterMode
    model = space_class().freeze(arch).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, 8, 8))
    return {'parameters': sum(p.numel() for p in model.parameters()),
            'mflops': round(counter.get_total_flops() / 1e6, 6)}


def train_alone(arch: dict, data: dict, epochs: int, seed: int, space_class=s.DigitsCellSpace) -> dict[str, float]:
    """Train ``arch`` from scratch on search-train by the protocol; its search-val and test accuracy."""
    torch.manual_seed(seed)
    model = space_class().freeze(arch)
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


def one_architecture(arch: dict, data: dict, args, space_class=s.DigitsCellSpace) -> dict:
    """Both protocols over every seed; the mean test accuracy of the full one is the true accuracy."""
    full = [train_alone(arch, data, args.epochs, seed, space_class) for seed in range(args.seeds)]
    short = [train_alone(arch, data, args.short_epochs, seed, space_class) for seed in range(args.seeds)]
    test = [round(run['test'], 4) for run in full]
    return {'arch': arch, 'true_accuracy': round(statistics.mean(test), 4), 'test': test,
            'val': [round(run['val'], 4) for run in full], 'short_val': [round(run['val'], 4) for run in short],
            **size_of(space_class, arch)}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--space', choices=list(SPACES), default='cell')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--short-epochs', type=int, default=5)
    parser.add_argument('--archs', type=int, default=None, help='train only the first ARCHS architectures')
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('ground_truth.py', argv)
    if args.quick:
        args.seeds, args.epochs, args.short_epochs, args.archs = 2, 1, 1, 4
    description, space_class, architectures = SPACES[args.space]
    data, archs = s.digits_tensors(), architectures()
    rows = []
    for i, arch in enumerate(archs[:args.archs]):
        rows.append(one_architecture(arch, data, args, space_class))
        print(f'{i + 1}/{len(archs[:args.archs])} {arch}: {rows[-1]["true_accuracy"]:.4f}', flush=True)
    result.update(space=description, space_key=args.space,
                  split={part: len(tensors[1]) for part, tensors in data.items()}, recipe=RECIPE, seeds=args.seeds,
                  epochs=args.epochs, short_epochs=args.short_epochs, architectures=rows)
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
