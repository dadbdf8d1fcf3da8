"""REINFORCE: the policy-gradient update by hand, the planted optimum, and a latency reward."""

from __future__ import annotations

import math

import nni
import pytest
import torch
from nni.nas.evaluator.pytorch.lightning import DataLoader, Lightning, LightningModule, Trainer

from nni_proxyless import Proxyless
from nni_proxyless.arch import ArchParameters, Selection
from nni_proxyless.labels import Choice
from nni_proxyless.reinforce import ReinforceUpdate

from conftest import ConvSpace, digits_datasets, digits_evaluator, run_search
from planted import PlantedSpace
from nni_proxyless.latency import LatencyTable, Term

from test_latency_search import TwinSpace


def _toy() -> ArchParameters:
    arch = ArchParameters(seed=0)
    arch.register(Choice('a', 'layer', (0, 1, 2)))
    arch.register(Choice('b', 'layer', (0, 1)))
    with torch.no_grad():
        arch.logit('a').copy_(torch.tensor([0.0, math.log(2.0), 0.0]))   # p_a = (1/4, 1/2, 1/4)
    return arch


def test_policy_gradient_by_hand():
    """Rewards 1 and 0 for (a=1, b=0) and (a=0, b=1): baseline 1/2, grad_a = (1/4, -1/4, 0), grad_b = (-1/4, 1/4)."""
    arch, update = _toy(), ReinforceUpdate(latency=None)
    rewarded = [({'a': Selection((1,)), 'b': Selection((0,))}, {'a': 1, 'b': 0}, 1.0),
                ({'a': Selection((0,)), 'b': Selection((1,))}, {'a': 0, 'b': 1}, 0.0)]
    loss = update.loss(arch, rewarded)
    grad_a, grad_b = torch.autograd.grad(loss, [arch.logit('a'), arch.logit('b')])
    torch.testing.assert_close(grad_a, torch.tensor([0.25, -0.25, 0.0]))
    torch.testing.assert_close(grad_b, torch.tensor([-0.25, 0.25]))
    assert update.baseline.item() == pytest.approx(0.5)
    update.loss(arch, [(rewarded[0][0], rewarded[0][1], 0.9)])        # b <- b + 0.99 (0.9 - b)
    assert update.baseline.item() == pytest.approx(0.5 + 0.99 * 0.4)


def test_reward_is_accuracy_times_latency_ratio():
    """R = ACC * (LAT / T) ** w: with w = -0.1, T = 10 ms, LAT = 20 ms, ACC 0.8: 0.8 * 2 ** -0.1."""
    update = ReinforceUpdate(ref_latency=10.0, latency=lambda sample: 20.0)
    assert update.reward(0.8, {}) == pytest.approx(0.8 * 2 ** -0.1)


def test_reinforce_finds_planted_optimum_in_eight_of_ten_seeds(tmp_path):
    """10 seeds x 10 epochs on digits with REINFORCE: the planted architecture is exported at least 8 times.

    The other candidates destroy the signal (an accuracy reward cannot tell a harmless no-op from the planted
    layer, which only the gradient mode's gates see).
    """
    solved = 0
    for seed in range(10):
        torch.manual_seed(seed)
        space = PlantedSpace(plant_seed=100 + seed, destructive=True)
        strategy = Proxyless(arch_update='reinforce', arch_update_every=1, arc_learning_rate=3e-3, seed=seed)
        exp = run_search(space, strategy, digits_evaluator(epochs=10), tmp_path / str(seed))
        solved += exp.export_top_models(top_k=1, formatter='dict')[0] == space.planted_architecture()
    assert solved >= 8, f'planted optimum exported in {solved}/10 seeds'


def test_latency_reward_steers_to_the_fast_twin(tmp_path):
    """With the latency in the reward, REINFORCE favours the faster of two equally accurate candidates.

    The twins' latencies are given (1 and 4 ms each, as a measurement on an idle machine finds them about), so
    that what is tested is the reward, not this machine's load while the test runs.
    """
    labels = {f'c{i}': ['fast', 'slow'] for i in range(2)}
    twin_table = LatencyTable(labels=labels, fixed=0.5,
                              terms=[Term(costs=(1.0, 4.0), labels=(label,)) for label in labels])
    fast = twin_table.predict({'c0': 'fast', 'c1': 'fast'})
    favoured = 0
    for seed in range(5):
        torch.manual_seed(seed)
        strategy = Proxyless(arch_update='reinforce', arch_update_every=1, arc_learning_rate=3e-3, seed=seed,
                             applied_hardware=twin_table, ref_latency=fast, reinforce_options={'latency_weight': -1.0})
        run_search(TwinSpace(), strategy, digits_evaluator(epochs=3), tmp_path / str(seed))
        favoured += all(strategy.arch.probs(f'c{i}')[0] > 0.5 for i in range(2))
    assert favoured >= 4


@nni.trace
class _DictBatches(LightningModule):
    """An evaluator module whose batches are dicts {'image': ..., 'label': ...}."""

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.cross_entropy(self(batch['image']), batch['label'])

    def validation_step(self, batch, batch_idx):
        self.log('default', (self(batch['image']).argmax(1) == batch['label']).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def _dict_evaluator() -> Lightning:
    train, val = digits_datasets(n_train=256)
    as_dicts = lambda data: [{'image': x, 'label': y} for x, y in data]  # noqa: E731
    trainer = Trainer(max_epochs=1, accelerator='cpu', enable_progress_bar=False, logger=False,
                      enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0)
    return Lightning(_DictBatches(), trainer, train_dataloaders=DataLoader(as_dicts(train), batch_size=64),
                     val_dataloaders=DataLoader(as_dicts(val), batch_size=64))


def test_reinforce_with_dict_batches_uses_input_of(tmp_path):
    """Dict batches: with input_of and metric, each sampled architecture is run on input_of(batch) (the images,
    checked by their shape) and the logits move; without input_of, the error names it and shows how to write it."""
    seen = []

    def input_of(batch):
        seen.append(tuple(batch['image'].shape))
        return batch['image']

    metric = lambda output, batch: (output.argmax(-1) == batch['label']).float().mean()  # noqa: E731
    strategy = Proxyless(seed=0, arch_update='reinforce', arch_update_every=1,
                         reinforce_options={'input_of': input_of, 'metric': metric, 'samples': 2})
    run_search(ConvSpace(), strategy, _dict_evaluator(), tmp_path / 'ok')
    assert seen and all(shape[1:] == (1, 8, 8) for shape in seen) and len(seen) % 2 == 0
    assert any(float(p.abs().max()) > 0 for p in strategy.arch.parameters())
    failing = Proxyless(seed=0, arch_update='reinforce', arch_update_every=1, reinforce_options={'metric': metric})
    with pytest.raises(TypeError, match=r"batch is a dict.*'input_of': lambda batch: batch\['image'\].*'input_of' is"):
        run_search(ConvSpace(), failing, _dict_evaluator(), tmp_path / 'missing')


def test_reward_prices_with_the_table_the_search_holds(tmp_path):
    """The reward reads the search's current table: the one a resume takes from its checkpoint (or DDP from rank
    0) replaces the table built at the start for the reward too, not only for the loss and the figures."""
    labels = {f'c{i}': ['fast', 'slow'] for i in range(2)}
    built, restored = (LatencyTable(labels=labels, fixed=fixed, terms=[Term(costs=costs, labels=(label,))
                                                                       for label in labels])
                       for fixed, costs in ((0.5, (1.0, 4.0)), (5.0, (10.0, 40.0))))
    strategy = Proxyless(arch_update='reinforce', seed=0, applied_hardware=built, ref_latency=1.0)
    run_search(TwinSpace(), strategy, digits_evaluator(epochs=1, limit_train_batches=1), tmp_path)
    module = strategy.oneshot_module
    module.latency.table = restored   # what on_load_checkpoint does with the checkpoint's table
    assert module.reinforce.latency({'c0': 'slow', 'c1': 'fast'}) == 5.0 + 40.0 + 10.0
