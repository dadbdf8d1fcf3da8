"""A digits search run as its own process, for the distributed and resume tests.

Usage: python search_digits.py OUT_DIR [--ddp] [--epochs N] [--kill-at-step S] [--resume CKPT]
                                        [--space conv|batchnorm|value] [--hardware flops|cpu]
Writes OUT_DIR/rank<R>.json with the architecture logits, the top-3 export and a sum per weight tensor of each
process (on the ``batchnorm`` space, with BatchNorm and a sliced stem, also the BatchNorm statistics each
validation and the exported instance ran with). With ``--hardware``, the search has a latency table and loss.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import nni
import torch
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableConv2d, MutableLinear
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import ModelCheckpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import BatchNormSpace, ConvSpace, digits_evaluator, run_search  # noqa: E402
from nni_proxyless import Proxyless  # noqa: E402


class KillAt(Callback):
    """SIGKILL this process when the search reaches a step: a crash without any clean-up."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.step_count == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class ValidationStatistics(Callback):
    """Records the BatchNorm running statistics at the first batch of every validation."""

    def __init__(self):
        self.seen: list[list[float]] = []

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0:
            self.seen.append(statistics(pl_module.model))


def statistics(model: torch.nn.Module) -> list[float]:
    return [float(v) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
            for v in torch.cat([m.running_mean, m.running_var])]


class SlicedBatchNormSpace(BatchNormSpace):
    """The BatchNorm space with a stem whose kernel size is a value choice (a sliced layer)."""

    def __init__(self, width: int = 8):
        super().__init__(width)
        kernel = nni.choice('stem_kernel', [3, 5])
        self.stem[0] = MutableConv2d(1, width, kernel, padding=kernel // 2, bias=False)


class ValueChoiceSpace(ModelSpace):
    """``nni.choice`` values: the stem's kernel size and width, a width expression (``width * 2``), and a
    LayerChoice between a sliced convolution (with the same two choices) and a skip, so that the latency table
    has terms on two labels and terms under a condition."""

    def __init__(self):
        super().__init__()
        width, kernel = nni.choice('width', [4, 8]), nni.choice('kernel', [3, 5])
        self.stem = MutableConv2d(1, width, kernel, padding=kernel // 2)
        self.block = LayerChoice({'conv': MutableConv2d(width, width, kernel, padding=kernel // 2),
                                  'skip': torch.nn.Identity()}, label='block')
        self.expand = MutableConv2d(width, width * 2, 1)
        self.head = MutableLinear(width * 2, 10)

    def forward(self, x):
        x = torch.relu(self.block(torch.relu(self.stem(x))))
        return self.head(torch.relu(self.expand(x)).mean((2, 3)))


SPACES = {'conv': ConvSpace, 'batchnorm': SlicedBatchNormSpace, 'value': ValueChoiceSpace}


def weight_sums(model: torch.nn.Module) -> list[float]:
    """One number per weight tensor of the supernet (equal on every rank when DDP averaged the gradients)."""
    return [float(p.detach().double().sum()) for name, p in model.named_parameters() if 'arch' not in name]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('out', type=Path)
    parser.add_argument('--ddp', action='store_true')
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--kill-at-step', type=int)
    parser.add_argument('--resume')
    parser.add_argument('--logger', action='store_true', help='TensorBoard logs and plots under OUT_DIR/logs')
    parser.add_argument('--space', choices=sorted(SPACES), default='conv')
    parser.add_argument('--hardware', choices=['flops', 'cpu'], help='latency table (and an add#linear loss)')
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    callbacks = [ModelCheckpoint(dirpath=args.out / "checkpoints", save_last=True)]
    if args.kill_at_step is not None:
        callbacks.append(KillAt(args.kill_at_step))
    validation_statistics = ValidationStatistics()
    if args.space == 'batchnorm':
        callbacks.append(validation_statistics)
    trainer_options = dict(strategy='ddp', devices=2) if args.ddp else {}
    if args.logger:
        trainer_options.update(logger=True, default_root_dir=str(args.out / 'logs'))
    evaluator = digits_evaluator(epochs=args.epochs, enable_checkpointing=True, callbacks=callbacks,
                                 **trainer_options)
    if args.resume:
        evaluator.fit_kwargs['ckpt_path'] = args.resume
    latency = {} if args.hardware is None else dict(
        applied_hardware=args.hardware, dummy_input=(1, 1, 8, 8), grad_reg_loss_type='add#linear',
        grad_reg_loss_params={'lambda': 0.5}, ref_latency=1.0)
    strategy = Proxyless(arch_update_every=2, seed=7, **latency)
    exp = run_search(SPACES[args.space](), strategy, evaluator, args.out / 'nni')
    rank = strategy.oneshot_module.global_rank
    result = {'logits': {label: strategy.arch.logit(label).tolist() for label in strategy.arch.labels()},
              'export': [dict(a) for a in exp.export_top_models(top_k=3, formatter='dict')],
              'step_count': strategy.oneshot_module.step_count,
              'weights': weight_sums(strategy.oneshot_module.training_module.model)}
    if args.space == 'batchnorm':
        result['validation_statistics'] = validation_statistics.seen
        result['instance_statistics'] = statistics(exp.export_top_models(formatter='instance')[0])
    (args.out / f'rank{rank}.json').write_text(json.dumps(result))


if __name__ == '__main__':
    main()
