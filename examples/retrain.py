"""Train an exported architecture from scratch; report its test accuracy and its measured CPU latency.

Takes the JSON written by ``legacy_trainer.py`` (one architecture) or ``cifar10_search.py`` (the top-k, with
the space they belong to), builds the subnet with ``model_space.freeze(arch)`` and trains it on digits (default)
or CIFAR-10 (``--data-dir``, never downloaded; ``--fake-data`` for random 32x32 images).

    python examples/retrain.py digits_arch.json --space legacy_trainer:DigitsSpace --epochs 30
    python examples/retrain.py cifar10_top.json --rank 1 --data-dir ~/data --epochs 100
    python examples/retrain.py cifar10_top.json --fake-data --smoke
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms as T

import nni_proxyless  # noqa: F401  (quiets NNI's warnings about this torch release)
from nni_proxyless._io import write_json_atomically
from nni_proxyless.latency import ModuleCall
from nni_proxyless.latency.measure import MeasuredPredictor

from _common import digits_split


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('arch', type=Path, help='exported architecture JSON (from either search example)')
    parser.add_argument('--rank', type=int, default=1, help='which of a top-k file to train')
    parser.add_argument('--space', help="'module:Class' (e.g. legacy_trainer:DigitsSpace) or a class of "
                        'nni.nas.hub.pytorch (e.g. ProxylessNAS); default: the one named in the file')
    parser.add_argument('--space-args', type=json.loads, help='JSON keyword arguments of the space (default: the '
                        "file's, else none), e.g. '{\"num_labels\": 10, \"width_mult\": 0.35}'")
    data = parser.add_mutually_exclusive_group()
    data.add_argument('--data-dir', type=Path, help='CIFAR-10 folder (holding cifar-10-batches-py)')
    data.add_argument('--fake-data', action='store_true', help='random 32x32 images instead of CIFAR-10')
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--learning-rate', type=float, default=0.05, help='SGD, momentum 0.9, cosine decay')
    parser.add_argument('--output', type=Path, default=Path('retrain_result.json'), help='results (JSON)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--smoke', action='store_true', help='1 epoch on a few batches: checks that everything runs')
    return parser.parse_args()


def load_architecture(args: argparse.Namespace) -> tuple[dict, str, dict]:
    """The architecture, the space's name and its arguments (command line first, then the file)."""
    data = json.loads(args.arch.read_text())
    space, space_args = data.get('space'), data.get('space_args', {})
    if 'architectures' in data:
        rows = {row['rank']: row['arch'] for row in data['architectures']}
        if args.rank not in rows:
            sys.exit(f'error: {args.arch} holds ranks {sorted(rows)}, not --rank {args.rank}.')
        data = rows[args.rank]
    space = args.space or space
    if space is None:
        sys.exit(f'error: {args.arch} does not name its space: pass --space (e.g. legacy_trainer:DigitsSpace).')
    return data, space, args.space_args if args.space_args is not None else space_args


def build_subnet(arch: dict, space: str, space_args: dict) -> nn.Module:
    """``model_space.freeze(arch)``: the chosen subnet, freshly initialised."""
    module, _, name = space.rpartition(':')
    space_class = getattr(importlib.import_module(module or 'nni.nas.hub.pytorch'), name)
    return space_class(**space_args).freeze(arch)


def datasets(args: argparse.Namespace) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset, tuple]:
    """Training and test sets, and one input's shape: digits, CIFAR-10 or fake 32x32 images."""
    if args.fake_data or args.data_dir:
        plain = T.Compose([T.ToTensor(), T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
        if args.fake_data:
            return (torchvision.datasets.FakeData(512, (3, 32, 32), 10, transform=plain),
                    torchvision.datasets.FakeData(256, (3, 32, 32), 10, transform=plain, random_offset=512),
                    (3, 32, 32))
        augmented = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), plain])
        try:
            return (torchvision.datasets.CIFAR10(str(args.data_dir), train=True, transform=augmented),
                    torchvision.datasets.CIFAR10(str(args.data_dir), train=False, transform=plain), (3, 32, 32))
        except RuntimeError:
            sys.exit(f'error: CIFAR-10 is not in {args.data_dir} (expected cifar-10-batches-py there; never '
                     'downloaded): get it from https://www.cs.toronto.edu/~kriz/cifar.html, or use --fake-data.')
    train, test = digits_split(1400)
    return train, test, (1, 8, 8)


def train(model: nn.Module, loader: torch.utils.data.DataLoader, epochs: int, args: argparse.Namespace) -> None:
    """SGD with momentum and cosine decay on cross-entropy."""
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9, weight_decay=4e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(loader))
    for epoch in range(epochs):
        model.train()
        for step, (x, y) in enumerate(loader):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if args.smoke and step == 3:
                break
        print(f'epoch {epoch + 1}/{epochs}: last loss {loss.item():.4f}')


@torch.no_grad()
def accuracy(model: nn.Module, loader: torch.utils.data.DataLoader) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    return correct / total


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    arch, space, space_args = load_architecture(args)
    model = build_subnet(arch, space, space_args)
    train_set, test_set, shape = datasets(args)
    epochs = 1 if args.smoke else args.epochs
    train(model, torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True), epochs, args)
    test_accuracy = accuracy(model, torch.utils.data.DataLoader(test_set, batch_size=256))
    timer = MeasuredPredictor('cpu', threads=1, cache_dir=False)
    latency = timer.predict([ModuleCall(model, (torch.zeros(1, *shape),), {})])[0]
    print(f'{space}{space_args} {arch}\ntest accuracy {test_accuracy:.4f}, CPU latency {latency:.3f} ms '
          f'({timer.description}, batch 1)')
    write_json_atomically(args.output, {'space': space, 'space_args': space_args, 'arch': arch, 'epochs': epochs,
                                        'test_accuracy': test_accuracy, 'latency_ms': latency,
                                        'latency_setting': timer.description})
    print(f'Written to {args.output}')


if __name__ == '__main__':
    main()
