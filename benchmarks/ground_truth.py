"""The ground truths of the searcher comparison: every architecture of a small digits space trained alone.

Not part of ``make bench``: it writes the tables ``truth_search.py`` reads, which are committed. Regenerate them
(each about 30 minutes on one core) with
``python benchmarks/ground_truth.py --space cell --json benchmarks/results/ground_truth.json`` and
``python benchmarks/ground_truth.py --space value --seeds 6 --workers 2 --json benchmarks/results/ground_truth_value.json``
(the committed value table: 3 seeds, then extended to 6, 49 minutes in all).
``--workers N`` trains the architectures in N processes (one torch thread each); ``--extend TABLE --seeds N``
keeps TABLE's seeds and trains only the seeds it lacks (seed ``k`` of an architecture is the same training whenever
it runs, so a table of 3 seeds extended to 6 equals one built with 6).

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

import contextlib
import json
import multiprocessing
import statistics
import time
from pathlib import Path

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


def one_architecture(arch: dict, data: dict, args, space_class=s.DigitsCellSpace, known: dict | None = None) -> dict:
    """Both protocols over every seed; the mean test accuracy of the full one is the true accuracy.

    ``known``: this architecture's row of an earlier table; its seeds are kept and only the later ones trained.
    """
    done = 0 if known is None else len(known['test'])
    full = [train_alone(arch, data, args.epochs, seed, space_class) for seed in range(done, args.seeds)]
    short = [train_alone(arch, data, args.short_epochs, seed, space_class) for seed in range(done, args.seeds)]
    earlier = known or {'test': [], 'val': [], 'short_val': []}
    test = earlier['test'] + [round(run['test'], 4) for run in full]
    return {'arch': arch, 'true_accuracy': round(statistics.mean(test), 4), 'test': test,
            'val': earlier['val'] + [round(run['val'], 4) for run in full],
            'short_val': earlier['short_val'] + [round(run['val'], 4) for run in short],
            **size_of(space_class, arch)}


def _one_in_worker(task: tuple) -> dict:
    """:func:`one_architecture` in a spawned process (one torch thread, its own copy of the data)."""
    arch, args, space_key, known = task
    torch.set_num_threads(1)
    return one_architecture(arch, s.digits_tensors(), args, SPACES[space_key][1], known)


def earlier_table(path: str, args) -> dict:
    """The table ``--extend`` names, checked to be of the same protocol and to have no more seeds than asked for."""
    table = json.loads(Path(path).read_text())
    same = {'space_key': args.space, 'epochs': args.epochs, 'short_epochs': args.short_epochs}
    differs = {key: (table.get(key), value) for key, value in same.items() if table.get(key) != value}
    if differs:
        raise SystemExit(f'--extend {path}: the table was built with another protocol ({differs}: table, now).')
    if table['seeds'] > args.seeds:
        raise SystemExit(f'--extend {path}: the table has {table["seeds"]} seeds; --seeds {args.seeds} would drop some.')
    return table


def origin(table: dict) -> dict:
    """What a table extended from ``table`` records of it: how it was built, and when (its own origin, nested)."""
    return {key: table[key] for key in ('command', 'seeds', 'machine', 'started', 'wall_seconds', 'extends')
            if key in table}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--space', choices=list(SPACES), default='cell')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--short-epochs', type=int, default=5)
    parser.add_argument('--archs', type=int, default=None, help='train only the first ARCHS architectures')
    parser.add_argument('--workers', type=int, default=1, help='architectures trained at a time, each in its own process')
    parser.add_argument('--extend', metavar='TABLE', help="keep this table's seeds, train only the seeds it lacks")
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('ground_truth.py', argv)
    if args.quick:
        args.seeds, args.epochs, args.short_epochs, args.archs = 2, 1, 1, 4
    description, space_class, architectures = SPACES[args.space]
    data, archs = s.digits_tensors(), architectures()[:args.archs]
    earlier = earlier_table(args.extend, args) if args.extend else {'architectures': []}
    known = {json.dumps(row['arch'], sort_keys=True): row for row in earlier['architectures']}
    tasks = [(arch, args, args.space, known.get(json.dumps(arch, sort_keys=True))) for arch in archs]
    rows = []
    with contextlib.ExitStack() as stack:
        if args.workers > 1:
            pool = stack.enter_context(multiprocessing.get_context('spawn').Pool(args.workers))
            done = pool.imap(_one_in_worker, tasks, chunksize=1)
        else:
            done = (one_architecture(arch, data, args, space_class, row) for arch, _, _, row in tasks)
        for i, row in enumerate(done):
            rows.append(row)
            print(f'{i + 1}/{len(archs)} {row["arch"]}: {row["true_accuracy"]:.4f}', flush=True)
    result.update(space=description, space_key=args.space,
                  split={part: len(tensors[1]) for part, tensors in data.items()}, recipe=RECIPE, seeds=args.seeds,
                  epochs=args.epochs, short_epochs=args.short_epochs, architectures=rows)
    if args.extend:  # the seeds taken over were trained by that table's run
        result['extends'] = origin(earlier)
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
