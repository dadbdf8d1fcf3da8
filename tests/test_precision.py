"""Mixed precision: gate gradients under autocast, fp16 loss scaling in the architecture step, clipping, exports.

Autocast runs on the CPU too (bfloat16 and float16), and Lightning's ``MixedPrecision('16-mixed', 'cpu')`` plugin
gives a CPU run the float16 gradient scaler a GPU run has, so everything here runs without a GPU.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning import Callback
from pytorch_lightning.plugins.precision import MixedPrecision

import nni_proxyless.ops.gate as gate_module
import nni_proxyless.training as training_module
from nni_proxyless import Proxyless
from nni_proxyless._precision import scaled_gradients, scaled_step

from conftest import ConvSpace, digits_datasets, digits_evaluator, run_search
from planted import PlantedSpace

EPS = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -10}  # machine epsilon: 8 and 11 significant bits


def _gradients(seed: int, dtype: torch.dtype | None, loss_scale: float = 1.0, scaler=None):
    """Gate gradients (by label) and logit gradients of one full_v2 architecture loss on a digits batch."""
    torch.manual_seed(seed)
    strategy = Proxyless(seed=seed, binary_mode='full_v2')
    supernet = strategy.mutate_model(ConvSpace())
    arch = strategy.arch
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for label in arch.labels():
            arch.logit(label).copy_(torch.randn(len(arch.choices[label].values), generator=generator))
    arch.routing.set(arch.sample_for_update(0, 'full_v2'))
    x, y = next(iter(torch.utils.data.DataLoader(digits_datasets()[0], batch_size=64)))
    labels = {id(arch.logit(label)): label for label in arch.labels()}
    gates, original = {}, gate_module.logit_grad_from_gates

    def recording(gate_grads, selection):
        gates[labels[id(selection.logits)]] = gate_grads.detach().clone()
        return original(gate_grads, selection)

    logits = list(arch.parameters())
    gate_module.logit_grad_from_gates = recording
    try:
        with torch.autocast('cpu', dtype=dtype) if dtype else contextlib.nullcontext():
            loss = F.cross_entropy(supernet(x), y) * loss_scale
            grads = scaled_gradients(loss, logits, scaler)
    finally:
        gate_module.logit_grad_from_gates = original
    if scaler is not None:  # what the architecture step's optimiser sees: unscaled by the scaler
        optimizer = torch.optim.SGD(logits, lr=0.0)
        for logit, grad in zip(logits, grads):
            logit.grad = grad
        scaled_step(optimizer, scaler)
        grads = [logit.grad for logit in logits]
    order = sorted(gates)
    return torch.cat([gates[label] for label in order]), torch.cat([g for g in grads])


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).norm() / reference.norm())


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_gate_gradients_under_autocast_match_float32(dtype):
    """Under autocast the gate gradients and logit gradients equal float32's within 32 machine epsilons.

    Why 32 eps (bf16: 12.5%, fp16: 3.1%, of the gradient's norm): autocast rounds the operands of every
    convolution and linear layer to the format (each by up to eps / 2), forward and backward, about eight
    roundings between an input and a gate gradient here; a gate gradient is an inner product whose terms partly
    cancel, which enlarges that relative error. Measured over six seeds: 2 to 11 eps in both formats. An error of
    scale (a gradient computed from float16 values that underflowed, a candidate run in another precision than the
    active one, logits rounded to half precision) is of order 1, far above the bound.
    """
    for seed in range(3):
        gates, logits = _gradients(seed, None)
        half_gates, half_logits = _gradients(seed, dtype)
        assert _relative_error(half_gates, gates) < 32 * EPS[dtype], seed
        assert _relative_error(half_logits, logits) < 32 * EPS[dtype], seed


def test_float16_architecture_gradients_need_the_loss_scale():
    """A small loss (x 2**-20) underflows float16: its gate gradients vanish unless the loss is scaled.

    With the gradient scaler's factor (here 2**20), the unscaled logit gradients match float32's within 32 eps.
    """
    gates, logits = _gradients(0, None, loss_scale=2.0 ** -20)
    _, unscaled = _gradients(0, torch.float16, loss_scale=2.0 ** -20)
    assert float(unscaled.abs().max()) == 0.0  # every dL/dy underflowed
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 20)
    _, scaled = _gradients(0, torch.float16, loss_scale=2.0 ** -20, scaler=scaler)
    assert _relative_error(scaled, logits) < 32 * EPS[torch.float16]


class TinyCrossEntropy(torch.nn.CrossEntropyLoss):
    """Cross-entropy x 2**-20: gradients that underflow float16 unless scaled."""

    def forward(self, output, target):
        return super().forward(output, target) * 2.0 ** -20


def _logits_after_one_architecture_step(tmp_path, **trainer_kwargs) -> torch.Tensor:
    torch.manual_seed(0)
    strategy = Proxyless(seed=0, binary_mode='full_v2', arch_update_every=1)
    evaluator = digits_evaluator(epochs=1, limit_train_batches=1, criterion=TinyCrossEntropy, **trainer_kwargs)
    run_search(ConvSpace(), strategy, evaluator, tmp_path)
    return torch.cat([logit.detach().clone() for logit in strategy.arch.parameters()])


def test_16_mixed_architecture_step_uses_the_trainers_loss_scale(tmp_path, monkeypatch):
    """Under '16-mixed' the first architecture step moves the logits as in float32 (its gradient is scaled like the
    weight step's); without the scale every gate gradient underflows and the logits do not move at all."""
    fp32 = _logits_after_one_architecture_step(tmp_path / '32')
    fp16 = _logits_after_one_architecture_step(tmp_path / '16', plugins=[MixedPrecision('16-mixed', 'cpu')])
    assert float(fp32.abs().max()) > 0
    assert _relative_error(fp16, fp32) < 0.05  # Adam's first step is linear in gradients this small
    monkeypatch.setattr(training_module, 'gradient_scaler', lambda trainer: None)
    unscaled = _logits_after_one_architecture_step(tmp_path / '16-unscaled',
                                                   plugins=[MixedPrecision('16-mixed', 'cpu')])
    assert float(unscaled.abs().max()) == 0.0


class GradientNorms(Callback):
    """Records the weight gradients' total norm when the weight optimiser actually steps."""

    def __init__(self):
        self.norms: list[float] = []

    def on_train_start(self, trainer, pl_module):
        optimizer = trainer.optimizers[0]  # the evaluator's; the architecture optimiser comes after it
        step = optimizer.step

        def recorded_step(*args, **kwargs):
            grads = [p.grad for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
            return step(*args, **kwargs)
        optimizer.step = recorded_step


def test_gradient_clipping_under_16_mixed_clips_the_true_gradients(tmp_path):
    """gradient_clip_val bounds the gradients the optimiser steps with, after the loss scale is taken out."""
    norms = GradientNorms()
    evaluator = digits_evaluator(epochs=1, limit_train_batches=6, callbacks=[norms],
                                 plugins=[MixedPrecision('16-mixed', 'cpu')])
    torch.manual_seed(0)
    run_search(ConvSpace(), Proxyless(seed=0, gradient_clip_val=1e-3), evaluator, tmp_path)
    assert len(norms.norms) >= 4  # steps skipped for overflow do not reach the optimiser
    assert max(norms.norms) <= 1e-3 * 1.001 and min(norms.norms) >= 1e-3 * 0.999, norms.norms


@pytest.mark.parametrize('precision', ['bf16-true', '16-true'])
def test_half_precision_parameters_are_refused(tmp_path, precision):
    """'bf16-true' / '16-true' would store the logits in half precision: refused, naming the fix."""
    evaluator = digits_evaluator(epochs=1, limit_train_batches=1, precision=precision)
    with pytest.raises(ValueError, match=f"precision='{precision}'.*'bf16-mixed'"):
        run_search(ConvSpace(), Proxyless(seed=0), evaluator, tmp_path)


def test_bf16_mixed_search_exports_what_float32_exports(tmp_path):
    """On the planted space, a bf16-mixed search exports the float32 search's top-1 in at least 9 of 10 seeds.

    Short searches (16 weight and 16 architecture steps, arc_learning_rate 3e-2, so that the logits move well
    away from their ties): the paths are drawn from the same seeds, so the two searches agree as long as
    bfloat16 keeps the logits' trajectory close to float32's.
    """
    same = []
    for seed in range(10):
        exports = []
        for precision in ('32-true', 'bf16-mixed'):
            torch.manual_seed(seed)
            space = PlantedSpace(plant_seed=100 + seed)
            strategy = Proxyless(arch_update_every=1, arc_learning_rate=3e-2, seed=seed)
            evaluator = digits_evaluator(epochs=2, limit_train_batches=8, precision=precision)
            exp = run_search(space, strategy, evaluator, tmp_path / f'{seed}-{precision}')
            exports.append(exp.export_top_models(top_k=1, formatter='dict')[0])
            assert strategy.arch.entropy() < 3 * math.log(3) - 0.01  # the search moved the logits
        same.append(exports[0] == exports[1])
    assert sum(same) >= 9, same
