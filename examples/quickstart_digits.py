"""Quick start: a ProxylessNAS search on scikit-learn's digits, with NNI 3.0's NasExperiment.

Run with ``make demo`` (or ``python examples/quickstart_digits.py --epochs 20``). Takes a few minutes on two
CPU cores: it measures every candidate's latency on this CPU, searches with a latency-aware loss, and prints
the search's progress and the three most probable architectures with their predicted latency. TensorBoard
scalars and PNG plots of the search go to ``runs/demo``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import nni_proxyless  # noqa: F401  (quiets NNI's warnings about this torch release)
from nni.nas.evaluator.pytorch import Classification
from nni.nas.experiment import NasExperiment
from nni.nas.nn.pytorch import InputChoice, LayerChoice, ModelSpace, Repeat
from nni_proxyless import Proxyless

from _common import digits_loaders


def conv_block(width: int, kernel: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(width, width, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU())


class DigitsSpace(ModelSpace):
    """Convolutional cells with a kernel choice, a searched depth and a searched skip connection."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.cells = Repeat(lambda i: LayerChoice({
            'conv3': conv_block(width, 3), 'conv5': conv_block(width, 5),
            'sep3': nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width), nn.Conv2d(width, width, 1),
                                  nn.BatchNorm2d(width), nn.ReLU()),
            'pool': nn.MaxPool2d(3, stride=1, padding=1)}, label=f'cell{i}'), (1, 3), label='depth')
        self.skip = InputChoice(2, 1, label='skip')  # the cells' output, with or without a residual from the stem
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(width * 4, 10)

    def forward(self, x):
        stem = self.stem(x)
        cells = self.cells(stem)
        x = self.skip([cells, cells + stem])
        return self.head(self.pool(x).flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--hardware', default='cpu', help="latency source: 'cpu' (measured here), 'flops', or none")
    parser.add_argument('--ref-latency', type=float, default=0.5, help='reference latency in ms (MFLOPs for flops)')
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    train, val = digits_loaders(args.batch_size)
    evaluator = Classification(train_dataloaders=train, val_dataloaders=val, num_classes=10, learning_rate=3e-3,
                               max_epochs=args.epochs, accelerator='cpu', default_root_dir='runs/demo',
                               enable_checkpointing=False)
    hardware = None if args.hardware == 'none' else args.hardware
    strategy = Proxyless(seed=args.seed, applied_hardware=hardware, dummy_input=(1, 1, 8, 8),
                         ref_latency=args.ref_latency)
    experiment = NasExperiment(DigitsSpace(), evaluator, strategy)
    experiment.run()

    print('\nTop-3 architectures (probability under the searched distribution, predicted latency):')
    for rank, arch in enumerate(experiment.export_top_models(top_k=3, formatter='dict'), start=1):
        latency = '' if arch.latency is None else f'  {arch.latency:.3f} {arch.latency_unit}'
        print(f'  {rank}. p={arch.probability:.4f}{latency}  {dict(arch)}')


if __name__ == '__main__':
    main()
