"""Batch-norm statistics of the validated and exported architecture (nni_proxyless.callbacks.batchnorm)."""

from __future__ import annotations

import copy

import pytest
import torch
from pytorch_lightning import Callback
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nni_proxyless import Proxyless
from nni_proxyless.callbacks.batchnorm import recalibrate, seeded_pass

from conftest import BatchNormSpace, digits_datasets, digits_evaluator, run_search


def _with_statistics_recomputed(model: nn.Module, dataset) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are recomputed over all of ``dataset``, in order."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        for x, _ in torch.utils.data.DataLoader(dataset, batch_size=64):
            model(x)
    return model.eval()


def _accuracy(model: nn.Module, dataset) -> float:
    x, y = zip(*[dataset[i] for i in range(len(dataset))])
    model.eval()
    with torch.no_grad():
        return (model(torch.stack(x)).argmax(1) == torch.stack(y)).float().mean().item()


def _statistics(model: nn.Module) -> list[torch.Tensor]:
    return [buffer.clone() for module in model.modules() if isinstance(module, _BatchNorm)
            for buffer in (module.running_mean, module.running_var, module.num_batches_tracked)]


def test_reported_accuracy_and_instance_use_the_architectures_own_statistics(tmp_path):
    """Validation reports and the exported instance score as the weights do with statistics recomputed apart."""
    train, val = digits_datasets()
    torch.manual_seed(0)
    space = BatchNormSpace()
    strategy = Proxyless(arch_update_every=1, arc_learning_rate=1e-3, seed=0)
    exp = run_search(space, strategy, digits_evaluator(epochs=2), tmp_path)
    architecture = dict(exp.export_top_models(formatter='dict')[0])
    instance = exp.export_top_models(formatter='instance')[0]
    with_search_statistics = space.freeze(architecture)      # the supernet's own, path-averaged statistics
    reference = _accuracy(_with_statistics_recomputed(with_search_statistics, train), val)
    assert abs(_accuracy(with_search_statistics, val) - reference) > 0.1  # they are wrong for this architecture
    assert strategy.oneshot_module.reporter.reports[-1]['default'] == pytest.approx(reference, abs=0.01)
    assert _accuracy(instance, val) == pytest.approx(reference, abs=0.01)


class _StatisticsWatch(Callback):
    """Records the BatchNorm buffers around every validation: before it, during it, and at the next weight step."""

    def __init__(self):
        self.last_train, self.validated, self.pairs, self.during = None, False, [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.validated:
            momenta = {m.momentum for m in pl_module.model.modules() if isinstance(m, _BatchNorm)}
            self.pairs.append((self.last_train, _statistics(pl_module.model), momenta))
            self.validated = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.last_train = _statistics(pl_module.model)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0:
            self.during.append(_statistics(pl_module.model))
            self.validated = True


def test_validation_leaves_the_search_statistics_unchanged(tmp_path):
    """The weight step after a validation sees the running statistics and momentum it would have seen without it."""
    watch = _StatisticsWatch()
    torch.manual_seed(1)
    run_search(BatchNormSpace(), Proxyless(arch_update_every=1, seed=1),
               digits_evaluator(epochs=1, limit_train_batches=8, val_check_interval=4, callbacks=[watch]), tmp_path)
    assert len(watch.pairs) == 1 and len(watch.during) == 2
    before, after, momenta = watch.pairs[0]
    assert momenta == {0.1}
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert not all(torch.equal(a, b) for a, b in zip(before, watch.during[0]))  # validation had its own


def test_recalibration_is_a_cumulative_average_over_the_batches():
    """Running mean and variance become the plain averages of the batches' means and unbiased variances."""
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(16, 3, generator=gen) * (k + 1) + k for k in range(4)]
    model = nn.Sequential(nn.BatchNorm1d(3), nn.SyncBatchNorm(3), nn.BatchNorm1d(3))
    unreached = model[2]
    unreached.running_mean.fill_(5.0)
    model.eval()
    used = recalibrate(model, batches, lambda batch: model[1](model[0](batch)))
    assert used == 4
    expected_mean = torch.stack([b.mean(0) for b in batches]).mean(0)
    expected_var = torch.stack([b.var(0, unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(model[0].running_mean, expected_mean)
    torch.testing.assert_close(model[0].running_var, expected_var)
    assert int(model[0].num_batches_tracked) == 4 and int(model[1].num_batches_tracked) == 4
    assert all(m.momentum == 0.1 for m in model) and not any(m.training for m in model.modules())
    assert torch.equal(unreached.running_mean, torch.full((3,), 5.0))  # no batch reached it: unchanged


def test_recalibration_pass_is_seeded_and_leaves_the_random_streams_alone():
    """The same batches every time; the global generator and the loader's own generator are as before."""
    loader_generator = torch.Generator().manual_seed(3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(100.0)), batch_size=10,
                                         shuffle=True, generator=loader_generator)
    global_state, loader_state = torch.get_rng_state(), loader_generator.get_state()
    passes = []
    for _ in range(2):
        with seeded_pass(loader, seed=7, limit=3) as batches:
            passes.append([batch[0] for batch in batches])
    assert len(passes[0]) == 3 and all(torch.equal(a, b) for a, b in zip(*passes))
    assert not torch.equal(passes[0][0], torch.arange(10.0))  # shuffled
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(loader_generator.get_state(), loader_state)


def test_zero_batches_turns_recalibration_off(tmp_path):
    """bn_recalibration_batches=0: the instance keeps the supernet's statistics; bad values are refused."""
    torch.manual_seed(2)
    space = BatchNormSpace()
    strategy = Proxyless(arch_update_every=1, seed=2, bn_recalibration_batches=0)
    exp = run_search(space, strategy, digits_evaluator(epochs=1, limit_train_batches=4, limit_val_batches=0),
                     tmp_path)
    instance = exp.export_top_models(formatter='instance')[0]
    supernet_statistics = _statistics(space.freeze(dict(exp.export_top_models(formatter='dict')[0])))
    assert all(torch.equal(a, b) for a, b in zip(_statistics(instance), supernet_statistics))
    for bad in (-1, 2.5, True, None):
        with pytest.raises(ValueError, match='bn_recalibration_batches'):
            Proxyless(bn_recalibration_batches=bad)
