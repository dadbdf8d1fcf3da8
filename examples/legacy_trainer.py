"""NNI 2.x style: ``ProxylessTrainer`` searches a small space on scikit-learn's digits with a CPU latency loss.

The seed page's script, on NNI 3.0: build a model space and an optimizer, hand both to ``ProxylessTrainer``
with the dataset, ``trainer.train()``, ``trainer.export(path)``. Latency is measured on this CPU (cached under
``$NNI_PROXYLESS_CACHE``) and pulls the search towards fast cells.

    python examples/legacy_trainer.py --epochs 20 --arch-path digits_arch.json
    python examples/legacy_trainer.py --smoke          # a few seconds: a check that everything runs
    python examples/retrain.py digits_arch.json --space legacy_trainer:DigitsSpace
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import nni_proxyless  # noqa: F401  (quiets NNI's warnings about this torch release)
from nni.nas.nn.pytorch import LayerChoice, ModelSpace
from nni_proxyless.trainer import ProxylessTrainer

from _common import LabelSmoothingLoss, accuracy, digits


def _conv(width: int, kernel: int, groups: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(width, width, kernel, padding=kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU())


class DigitsSpace(ModelSpace):
    """Three convolutional cells on 8x8 digits, each a choice of kernel size, separable convolution or skip."""

    def __init__(self, width: int = 32, cells: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.cells = nn.Sequential(*[LayerChoice({
            'conv3': _conv(width, 3), 'conv5': _conv(width, 5),
            'sep3': nn.Sequential(_conv(width, 3, groups=width), _conv(width, 1)),
            'skip': nn.Identity()}, label=f'cell{i}') for i in range(cells)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(width * 4, 10))

    def forward(self, x):
        return self.head(self.cells(self.stem(x)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--epochs', type=int, default=20, help='search epochs')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', type=int, default=0, help='data-loading processes (digits fit in memory)')
    parser.add_argument('--learning-rate', type=float, default=0.05, help='SGD (momentum 0.9) for the weights')
    parser.add_argument('--arc-learning-rate', type=float, default=3e-2,
                        help='Adam for the architecture (the seed uses 1e-3 for 120 ImageNet epochs; few steps here)')
    parser.add_argument('--applied-hardware', default='cpu', help="'cpu', 'flops', a table (.json), or 'none'")
    parser.add_argument('--grad-reg-loss-type', default='add#linear', choices=['add#linear', 'mul#log', 'none'])
    parser.add_argument('--grad-reg-loss-lambda', type=float, default=0.1, help="for 'add#linear'")
    parser.add_argument('--grad-reg-loss-alpha', type=float, default=0.2, help="for 'mul#log'")
    parser.add_argument('--grad-reg-loss-beta', type=float, default=0.3, help="for 'mul#log'")
    parser.add_argument('--reference-latency', type=float, default=0.4,
                        help='ms per 8x8 image (MFLOPs with flops); this space spans about 0.15-0.75 ms on a CPU')
    parser.add_argument('--log-frequency', type=int, default=10, help='steps between log lines')
    parser.add_argument('--arch-path', default='digits_arch.json', help='where the chosen architecture goes')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--smoke', action='store_true', help='1 epoch on 400 digits: checks that everything runs')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    none = lambda value: None if value == 'none' else value  # noqa: E731
    grad_reg_loss_params = ({'lambda': args.grad_reg_loss_lambda} if args.grad_reg_loss_type == 'add#linear' else
                            {'alpha': args.grad_reg_loss_alpha, 'beta': args.grad_reg_loss_beta})
    model = DigitsSpace()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9, weight_decay=4e-5)
    trainer = ProxylessTrainer(model,
                               loss=LabelSmoothingLoss(),
                               dataset=digits(400 if args.smoke else None),
                               optimizer=optimizer,
                               metrics=lambda output, target: accuracy(output, target, topk=(1, 5,)),
                               num_epochs=1 if args.smoke else args.epochs,
                               batch_size=args.batch_size, workers=args.workers,
                               arc_learning_rate=args.arc_learning_rate,
                               log_frequency=args.log_frequency,
                               grad_reg_loss_type=none(args.grad_reg_loss_type),
                               grad_reg_loss_params=grad_reg_loss_params,
                               applied_hardware=none(args.applied_hardware), dummy_input=(1, 1, 8, 8),
                               ref_latency=args.reference_latency)
    trainer.train()
    arch = trainer.export(args.arch_path)
    latency = '' if arch.latency is None else f', predicted latency {arch.latency:.4f} {arch.latency_unit}'
    print(f'Chosen architecture (probability {arch.probability:.4f}{latency}): {dict(arch)}')
    print(f'Written to {args.arch_path}')


if __name__ == '__main__':
    main()
