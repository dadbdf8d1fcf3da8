"""The Proxyless strategy end to end through NNI's NasExperiment on digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nni.nas.nn.pytorch import InputChoice, LayerChoice, ModelSpace, Repeat
from nni_proxyless import Architecture, Proxyless
from nni_proxyless.training import ProxylessModule

from conftest import ConvSpace, digits_datasets, digits_evaluator, nni_reports, run_search


class Counting(nn.Linear):
    """A linear candidate that counts its forward calls in training mode (the one-time shape check is in eval)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, x):
        self.calls += self.training
        return super().forward(x)


class MixedSpace(ModelSpace):
    """One of each choice: a LayerChoice, an InputChoice of two out of three inputs, a Repeat depth."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(64, 16)
        self.layer = LayerChoice([Counting(16, 16) for _ in range(3)], label='layer')
        self.branches = nn.ModuleList([nn.Linear(16, 16) for _ in range(3)])
        self.inputs = InputChoice(3, 2, reduction='sum', label='inputs')
        self.repeat = Repeat(lambda i: LayerChoice([Counting(16, 16), Counting(16, 16)], label=f'block{i}'),
                             (1, 3), label='depth')
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x.flatten(1)))
        x = torch.relu(self.layer(x))
        x = self.inputs([torch.relu(branch(x)) for branch in self.branches])
        return self.head(self.repeat(x))


def _counting(space):
    return {name: m for name, m in space.named_modules() if isinstance(m, Counting)}


def test_weight_step_runs_one_candidate_per_choice(tmp_path):
    """Weight-only steps run exactly one candidate per LayerChoice; unsampled candidates get no gradient."""
    space = MixedSpace()
    evaluator = digits_evaluator(epochs=1, limit_train_batches=4, limit_val_batches=0)
    run_search(space, Proxyless(arch_update_every=10_000, seed=0), evaluator, tmp_path)
    calls = {name: m.calls for name, m in _counting(space).items()}
    assert sum(v for k, v in calls.items() if k.startswith('layer.')) == 4
    with_grad = [k for k, m in _counting(space).items() if k.startswith('layer.') and m.weight.grad is not None]
    assert len(with_grad) == 1


def test_architecture_step_computes_no_weight_gradient(tmp_path, monkeypatch):
    """During architecture steps no weight gradient is computed, and the logits do move."""
    space, fired, inside = ConvSpace(), [], [False]
    for param in space.parameters():
        param.register_hook(lambda grad: fired.append(inside[0]) or grad)
    original = ProxylessModule.architecture_step

    def watched(self, step):
        inside[0] = True
        try:
            return original(self, step)
        finally:
            inside[0] = False
    monkeypatch.setattr(ProxylessModule, 'architecture_step', watched)
    strategy = Proxyless(arch_update_every=1, seed=0)
    run_search(space, strategy, digits_evaluator(epochs=1, limit_train_batches=5, limit_val_batches=0), tmp_path)
    assert fired and not any(fired)          # weight gradients only outside architecture steps
    assert all(logit.abs().sum() > 0 for logit in strategy.arch.parameters())


class InputsRecorded(MixedSpace):
    """MixedSpace that records, in each weight step, the InputChoice's candidate inputs and its output."""

    def __init__(self):
        super().__init__()
        self.records = []

    def forward(self, x):
        x = torch.relu(self.stem(x.flatten(1)))
        x = torch.relu(self.layer(x))
        candidates = [torch.relu(branch(x)) for branch in self.branches]
        y = self.inputs(candidates)
        if self.training and not self.inputs.selection('inputs').is_gated:  # architecture steps are gated
            self.records.append(([c.detach() for c in candidates], y.detach()))
        return self.head(self.repeat(y))


def test_input_choice_of_two_uses_two_inputs(tmp_path):
    """InputChoice(n_chosen=2): every weight step of a real search sums exactly two distinct inputs (which two
    varies); the export names two inputs."""
    space = InputsRecorded()
    strategy = Proxyless(arch_update_every=2, seed=1)
    run_search(space, strategy, digits_evaluator(epochs=1, limit_train_batches=6, limit_val_batches=0), tmp_path)
    pairs = [[(i, j) for i, j in [(0, 1), (0, 2), (1, 2)] if torch.equal(candidates[i] + candidates[j], output)]
             for candidates, output in space.records]
    assert len(pairs) == 6 and all(len(matching) == 1 for matching in pairs)   # one pair matches each step
    assert len({matching[0] for matching in pairs}) > 1                        # the pair is sampled, not fixed
    exported = strategy.top_architectures(1)[0]
    assert len(exported['inputs']) == 2 and len(set(exported['inputs'])) == 2


def test_exports_rebuild_with_model_space_freeze(tmp_path):
    """Every exported dict is accepted by a fresh model space's freeze(); unused block labels are absent."""
    exp = run_search(MixedSpace(), Proxyless(arch_update_every=1, seed=2),
                     digits_evaluator(epochs=1, limit_train_batches=8, limit_val_batches=0), tmp_path)
    exported = exp.export_top_models(top_k=5, formatter='dict')
    assert all(isinstance(a, Architecture) and 0 < a.probability < 1 for a in exported)
    for arch in exported:
        assert {f'block{i}' for i in range(arch['depth'])} <= set(arch) and f'block{arch["depth"]}' not in arch
        model = MixedSpace().freeze(arch)
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_instance_export_equals_supernet_on_argmax_path(tmp_path):
    """formatter='instance' gives the argmax subnet with inherited weights: same outputs as the supernet."""
    space = MixedSpace()
    strategy = Proxyless(arch_update_every=1, seed=3)
    exp = run_search(space, strategy, digits_evaluator(epochs=1, limit_train_batches=8, limit_val_batches=0),
                     tmp_path)
    subnet = exp.export_top_models(top_k=1, formatter='instance')[0]
    strategy.oneshot_module.route(strategy.arch.argmax_selections())
    x = torch.randn(4, 1, 8, 8)
    space.eval(), subnet.eval()
    torch.testing.assert_close(subnet(x), space(x))
    assert not any(isinstance(m, (LayerChoice, InputChoice, Repeat)) for m in subnet.modules())
    assert all(p.data_ptr() not in {q.data_ptr() for q in space.parameters()} for p in subnet.parameters())


def test_final_result_is_validation_accuracy_of_the_export(tmp_path, monkeypatch):
    """NNI gets per-epoch and final reports: the exported architecture's validation accuracy, plus the entropy."""
    reports = nni_reports(monkeypatch)
    strategy = Proxyless(arch_update_every=1, seed=4)
    exp = run_search(ConvSpace(), strategy, digits_evaluator(epochs=2), tmp_path)
    assert len(reports['PERIODICAL']) == 2 and len(reports['FINAL']) == 1
    final = reports['FINAL'][0]
    assert final['entropy'] == pytest.approx(strategy.arch.entropy(), rel=1e-6)
    subnet = exp.export_top_models(formatter='instance')[0].eval()
    _, val = digits_datasets()
    x, y = zip(*[val[i] for i in range(len(val))])
    with torch.no_grad():
        accuracy = (subnet(torch.stack(x)).argmax(1) == torch.stack(y)).float().mean().item()
    assert final['default'] == pytest.approx(accuracy, abs=1e-6)
    assert list(strategy.engine.list_models())[0].metrics.final == pytest.approx(accuracy, abs=1e-6)


def test_space_without_choices_is_refused():
    """A model space with nothing to search is refused before training, naming the space."""
    class Plain(ModelSpace):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    with pytest.raises(ValueError, match='Plain has no choice'):
        Proxyless().mutate_model(Plain())
