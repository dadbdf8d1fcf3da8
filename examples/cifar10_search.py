"""Hardware-aware ProxylessNAS on CIFAR-10: NNI's hub ``ProxylessNAS`` space, top-k export with latencies.

CIFAR-10's training set is split in halves: the weights train on one, the architecture (and the validation of
the most probable architecture) on the other. Latency comes from this CPU (``--hardware cpu``, measured once
and cached under ``$NNI_PROXYLESS_CACHE``), from FLOPs, or from an nn-Meter device. Nothing is downloaded.

    python examples/cifar10_search.py --data-dir ~/data --epochs 30 --width 0.35 --top-k 3
    python examples/cifar10_search.py --fake-data --epochs 1          # smoke run on random images
    python examples/retrain.py cifar10_top.json --data-dir ~/data     # train the top architecture from scratch
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchvision
from torchvision import transforms as T

import nni_proxyless  # noqa: F401  (quiets NNI's warnings about this torch release)
from nni.nas.evaluator.pytorch import Classification, DataLoader
from nni.nas.experiment import NasExperiment
from nni.nas.hub.pytorch import ProxylessNAS
from nni_proxyless import Proxyless
from nni_proxyless._io import write_json_atomically
from nni_proxyless.latency import NN_METER_DEVICES, available_predictors, build_latency_table

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument('--data-dir', type=Path, help='folder holding cifar-10-batches-py (never downloaded)')
    data.add_argument('--fake-data', action='store_true', help='random 32x32 images (torchvision FakeData)')
    parser.add_argument('--fake-size', type=int, default=256, help='images in the fake data set')
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--width', type=float, default=0.35, help="the space's width multiplier")
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--learning-rate', type=float, default=1e-3, help='Adam for the weights')
    parser.add_argument('--arc-learning-rate', type=_rate, default='auto',
                        help="Adam for the architecture; 'auto' fits it to the number of epochs (1e-3: official)")
    parser.add_argument('--arch-update-every', type=int, default=5, help='weight steps per architecture step')
    parser.add_argument('--hardware', default='cpu', choices=available_predictors(),
                        help='where latency comes from: measured here, FLOPs, or an nn-Meter device')
    parser.add_argument('--predictor-dir', help="nn-Meter's predictor folder (with an nn-Meter --hardware)")
    parser.add_argument('--ref-latency', type=float, default=None,
                        help='reference latency in ms (MFLOPs with flops); default: the middle of the space')
    parser.add_argument('--reg-lambda', type=float, default=0.1, help="weight of the 'add#linear' latency term")
    parser.add_argument('--top-k', type=int, default=3, help='architectures to export')
    parser.add_argument('--output', type=Path, default=Path('cifar10_top.json'), help='where the top-k go (JSON)')
    parser.add_argument('--workers', type=int, default=2, help='data-loading processes')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def _rate(text: str) -> float | str:
    return text if text == 'auto' else float(text)


def cifar10_halves(args: argparse.Namespace) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """CIFAR-10's training set (or fake images) split in halves: augmented for weights, plain for the architecture."""
    plain = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    augmented = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), plain])
    if args.fake_data:
        weights = architecture = torchvision.datasets.FakeData(args.fake_size, (3, 32, 32), 10, transform=plain)
    else:
        weights = load_cifar10(args.data_dir, augmented)
        architecture = load_cifar10(args.data_dir, plain)
    order = torch.randperm(len(weights), generator=torch.Generator().manual_seed(args.seed)).tolist()
    half = len(order) // 2
    return torch.utils.data.Subset(weights, order[:half]), torch.utils.data.Subset(architecture, order[half:])


def load_cifar10(root: Path, transform, train: bool = True) -> torch.utils.data.Dataset:
    """CIFAR-10 from ``root`` without downloading; exits with how to get it when it is not there."""
    try:
        return torchvision.datasets.CIFAR10(str(root), train=train, transform=transform, download=False)
    except RuntimeError:
        sys.exit(f'error: CIFAR-10 is not in {root} (expected {root / "cifar-10-batches-py"}). This example never '
                 'downloads: get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract '
                 f'it into {root}, or run: python -c "import torchvision; torchvision.datasets.CIFAR10(\'{root}\', '
                 'download=True)". Use --fake-data for a run without data.')


def latency_strategy(space: ProxylessNAS, args: argparse.Namespace) -> Proxyless:
    """The latency table of the space on ``--hardware``, and a Proxyless strategy around it."""
    options = {'predictor_dir': args.predictor_dir} if args.hardware in NN_METER_DEVICES else {}
    try:
        table = build_latency_table(space, args.hardware, (1, 3, 32, 32), **options)
    except (ValueError, OSError, NotImplementedError) as error:  # an unknown name, nn-Meter data missing, ...
        sys.exit(f'error: no latency from --hardware {args.hardware}: {error}')
    low, high = table.bounds()
    reference = args.ref_latency if args.ref_latency is not None else (low + high) / 2
    print(f'Architectures of this space take {low:.3f} to {high:.3f} {table.unit} on {args.hardware}; '
          f'reference latency {reference:.3f} {table.unit}.')
    return Proxyless(applied_hardware=table, dummy_input=(1, 3, 32, 32), ref_latency=reference,
                     grad_reg_loss_type='add#linear', grad_reg_loss_params={'lambda': args.reg_lambda},
                     arc_learning_rate=args.arc_learning_rate, arch_update_every=args.arch_update_every,
                     seed=args.seed)


def report(architectures: list, args: argparse.Namespace) -> None:
    """Print the top-k and save them, with the space that freezes them, as JSON (written atomically)."""
    print(f'\nTop-{len(architectures)} architectures (probability under the searched distribution):')
    rows = []
    for rank, arch in enumerate(architectures, start=1):
        print(f'  {rank}. p={arch.probability:.4g}  latency={arch.latency:.3f} {arch.latency_unit}  {dict(arch)}')
        rows.append({'rank': rank, 'probability': arch.probability, 'latency': arch.latency,
                     'latency_unit': arch.latency_unit, 'arch': dict(arch)})
    write_json_atomically(args.output, {'space': 'ProxylessNAS', 'space_args': {'num_labels': 10,
                                                                               'width_mult': args.width},
                                        'hardware': args.hardware, 'architectures': rows})
    print(f'Written to {args.output}')


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    weights, architecture = cifar10_halves(args)
    space = ProxylessNAS(num_labels=10, width_mult=args.width)
    strategy = latency_strategy(space, args)
    evaluator = Classification(
        train_dataloaders=DataLoader(weights, batch_size=args.batch_size, shuffle=True, num_workers=args.workers),
        val_dataloaders=DataLoader(architecture, batch_size=args.batch_size, num_workers=args.workers),
        num_classes=10, learning_rate=args.learning_rate, weight_decay=4e-5, max_epochs=args.epochs,
        accelerator='auto', logger=False, enable_checkpointing=False)
    experiment = NasExperiment(space, evaluator, strategy)
    experiment.run()
    report(experiment.export_top_models(top_k=args.top_k, formatter='dict'), args)
    experiment.stop()


if __name__ == '__main__':
    main()
