"""NNI 2.x Retiarii style: ``RetiariiExperiment(..., strategy=Proxyless())`` on scikit-learn's digits, on NNI 3.0.

The script as NNI 2.x users wrote it (``@model_wrapper``, ``RetiariiExeConfig('local')``, ``exp.run(config,
port)``, ``export_top_models``); only the import lines differ from 2.x (``nni.retiarii`` -> ``nni_proxyless.
retiarii``; see docs/migrating.md). With ``--port`` the search shows in NNI's web UI, and ``nnictl view <id>``
reopens it afterwards.

    python examples/retiarii_style.py --epochs 20 --port 8081   # watch it at http://localhost:8081
    python examples/retiarii_style.py --smoke                   # a few seconds, no web UI: a check for CI
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import nni_proxyless.retiarii.evaluator.pytorch.lightning as pl      # was: nni.retiarii.evaluator.pytorch.lightning
import nni_proxyless.retiarii.nn.pytorch as nn                       # was: nni.retiarii.nn.pytorch
import nni_proxyless.retiarii.strategy as strategy                   # was: nni.retiarii.strategy
from nni_proxyless.retiarii import model_wrapper                     # was: nni.retiarii
from nni_proxyless.retiarii.experiment.pytorch import RetiariiExeConfig, RetiariiExperiment

from _common import digits_loaders


@model_wrapper
class DigitsNet(nn.Module):
    """A kernel choice, one to three searched cells, and a searched skip connection, for 8x8 digits."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.conv = nn.LayerChoice([nn.Conv2d(width, width, 3, padding=1),
                                    nn.Conv2d(width, width, 5, padding=2)], label='conv')
        self.cells = nn.Repeat(lambda index: nn.LayerChoice([
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width), nn.Conv2d(width, width, 1)),
            nn.MaxPool2d(3, stride=1, padding=1)], label=f'cell{index}'), nn.ValueChoice([1, 2, 3], label='depth'))
        self.skip = nn.InputChoice(n_candidates=2, n_chosen=1)  # unlabeled: 'model_1', as NNI 2.x named it
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(width * 4, 10)

    def forward(self, x):
        stem = self.stem(x)
        x = self.cells(F.relu(self.conv(stem)))
        x = self.skip([x, stem])
        return self.fc(self.pool(x).flatten(1))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--top-k', type=int, default=3, help='architectures to print')
    parser.add_argument('--port', type=int, help='show the search in NNI\'s web UI on this port')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--smoke', action='store_true', help='one short epoch (a check that everything runs)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    limits = dict(limit_train_batches=4, limit_val_batches=2) if args.smoke else {}
    train_loader, val_loader = digits_loaders(args.batch_size)
    evaluator = pl.Classification(train_dataloaders=train_loader, val_dataloaders=val_loader, num_classes=10,
                                  learning_rate=3e-3, max_epochs=1 if args.smoke else args.epochs,
                                  accelerator='cpu', logger=False, enable_checkpointing=False, **limits)

    exp = RetiariiExperiment(DigitsNet(), evaluator, [], strategy.Proxyless(arch_update_every=1,
                                                                            arc_learning_rate=3e-3, seed=args.seed))
    exp_config = RetiariiExeConfig('local')
    exp_config.experiment_name = 'digits-retiarii'
    exp_config.execution_engine = 'oneshot'
    exp_config.trial_concurrency = 1
    exp_config.training_service.use_active_gpu = False
    if args.port is None:
        exp.run(exp_config)                 # as in NNI 2.x one-shot: no web UI
    else:
        exp.run(exp_config, args.port)      # shown in NNI's web UI; `nnictl view <id>` reopens it
        print(f'Web UI experiment: {exp.web_ui.experiment_id} (nnictl view {exp.web_ui.experiment_id})')

    print(f'\nTop-{args.top_k} architectures (probability under the searched distribution):')
    for rank, arch in enumerate(exp.export_top_models(top_k=args.top_k, formatter='dict'), start=1):
        print(f'  {rank}. p={arch.probability:.4f}  {dict(arch)}')
    model = exp.export_top_models(formatter='instance')[0]  # the best subnet, with the supernet's weights
    print(f'Best subnet: {sum(p.numel() for p in model.parameters())} parameters')


if __name__ == '__main__':
    main()
