"""ProxylessTrainer, NNI 2.x's interface from the seed page, on digits through the Proxyless strategy."""

from __future__ import annotations

import argparse
import json
import logging

import pytest
import torch
from torch import nn

from nni_proxyless.ops import MixedOp
from nni_proxyless.trainer import ProxylessTrainer
from _common import LabelSmoothingLoss, accuracy, digits
from conftest import ConvSpace, nni_reports


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Latency cache and NNI's experiment folder (under ``~``) in the test's temporary folder."""
    monkeypatch.setenv('NNI_PROXYLESS_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    torch.manual_seed(0)


def _trainer(model, **overrides) -> ProxylessTrainer:
    """One quick epoch on digits; SGD on the model's parameters unless ``optimizer`` is given."""
    options = dict(loss=nn.CrossEntropyLoss(), metrics=lambda output, target: accuracy(output, target),
                   optimizer=torch.optim.SGD(model.parameters(), lr=0.05), num_epochs=1, dataset=digits(), workers=0,
                   dummy_input=(1, 1, 8, 8))
    options.update(overrides)
    return ProxylessTrainer(model, **options)


def test_seed_code_block_searches_and_exports_a_freezable_argmax(tmp_path):
    """The seed's code block (import line changed) trains on digits and exports the argmax as freezable JSON."""
    args = argparse.Namespace(grad_reg_loss_type='add#linear', applied_hardware='cpu', reference_latency=0.05,
                              arch_path=str(tmp_path / 'arch.json'))
    grad_reg_loss_params = {'lambda': 0.1}
    model = ConvSpace()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = ProxylessTrainer(model,
                               loss=LabelSmoothingLoss(),
                               dataset=digits(),
                               optimizer=optimizer,
                               metrics=lambda output, target: accuracy(output, target, topk=(1, 5,)),
                               num_epochs=2,
                               log_frequency=10,
                               grad_reg_loss_type=args.grad_reg_loss_type,
                               grad_reg_loss_params=grad_reg_loss_params,
                               applied_hardware=args.applied_hardware, dummy_input=(1, 1, 8, 8),
                               ref_latency=args.reference_latency)
    trainer.train()
    returned = trainer.export(args.arch_path)
    saved = json.loads((tmp_path / 'arch.json').read_text())
    arch = trainer.strategy.arch
    argmax = {label: choice.values[int(arch.logit(label).argmax())] for label, choice in arch.choices.items()}
    assert saved == dict(returned) == argmax and set(saved) == {'conv1', 'conv2'}
    assert ConvSpace().freeze(saved)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_step_logs_show_loss_metrics_and_latency(caplog):
    """Every log_frequency steps the log shows the loss, each metric and the argmax architecture's latency."""
    caplog.set_level(logging.INFO, logger='nni.proxyless')
    model = ConvSpace()
    trainer = _trainer(model, log_frequency=5, batch_size=128,
                       metrics=lambda output, target: accuracy(output, target, topk=(1, 5)),
                       applied_hardware='cpu', grad_reg_loss_params={'lambda': 0.1}, ref_latency=0.05)
    trainer.train()
    steps = [r.getMessage() for r in caplog.records if 'Step [' in r.getMessage()]
    assert len(steps) == 2  # 898 training digits in batches of 128: 8 steps, logged at steps 1 and 6
    assert all(all(word in line for word in ('loss', 'acc1', 'acc5', 'latency_ms')) for line in steps)


def test_final_report_is_the_exported_architectures_accuracy_on_the_second_half(monkeypatch):
    """NNI's final result holds the metrics of the exported architecture on the dataset's second half."""
    reported = nni_reports(monkeypatch)['FINAL']
    model = ConvSpace()
    trainer = _trainer(model, metrics=lambda output, target: accuracy(output, target, topk=(1, 5)))
    trainer.train()
    subnet = trainer.experiment.export_top_models(formatter='instance')[0].eval()
    x, y = digits().tensors
    with torch.no_grad():
        expected = accuracy(subnet(x[len(x) // 2:]), y[len(y) // 2:], topk=(1, 5))
    assert len(reported) == 1 and reported[0]['default'] == pytest.approx(expected['acc1'], abs=1e-6)
    assert reported[0]['val_acc5'] == pytest.approx(expected['acc5'], abs=1e-6) and 'entropy' in reported[0]


def test_optimizer_built_before_mutation_trains_the_candidates():
    """An optimizer built on the model space before the search updates its candidates (the same parameters)."""
    model = ConvSpace()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    candidates = {name: p for name, p in model.named_parameters() if name.startswith('conv')}
    before = {name: p.detach().clone() for name, p in candidates.items()}
    trainer = _trainer(model, optimizer=optimizer)
    trainer.train()
    assert any(isinstance(m, MixedOp) for m in model.modules())       # searched in place
    supernet = {id(p) for p in model.parameters()}
    assert all(id(p) in supernet for p in candidates.values())         # the optimizer's objects are the supernet's
    moved = {name for name, p in candidates.items() if not torch.equal(p.detach(), before[name])}
    assert moved == set(candidates) == {f'{c}.{w}' for c in ('conv1.k3', 'conv1.k5', 'conv2.k3', 'conv2.k1')
                                        for w in ('weight', 'bias')}


def test_dataset_none_is_refused_before_any_work(tmp_path):
    """dataset=None (the seed page's placeholder) raises a ValueError naming dataset; nothing is mutated or timed."""
    model = ConvSpace()
    with pytest.raises(ValueError, match='dataset is required'):
        _trainer(model, dataset=None, applied_hardware='cpu',
                 grad_reg_loss_params={'lambda': 0.1})
    assert not any(isinstance(m, MixedOp) for m in model.modules())
    assert not (tmp_path / 'cache').exists()


@pytest.mark.parametrize('loss_type, params, missing', [
    ('add#linear', None, "'lambda'"), ('add#linear', {'alpha': 0.2}, "'lambda'"),
    ('mul#log', None, "'alpha', 'beta'"), ('mul#log', {'alpha': 0.2}, "'beta'"), ('mul#log', {'beta': 0.3}, "'alpha'")])
def test_latency_loss_params_are_required(loss_type, params, missing):
    """With applied_hardware, add#linear needs lambda and mul#log needs alpha and beta: the error names the missing."""
    model = ConvSpace()
    with pytest.raises(ValueError, match=f'missing {missing} '):
        _trainer(model, applied_hardware='cpu',
                 grad_reg_loss_type=loss_type, grad_reg_loss_params=params, ref_latency=10.0)
    _trainer(model, grad_reg_loss_type=loss_type)  # no hardware: fine


@pytest.mark.parametrize('argument, value, message', [
    ('num_epochs', 0, 'num_epochs must be an integer >= 1'), ('batch_size', 0, 'batch_size must be an integer >= 1'),
    ('workers', -1, 'workers must be an integer >= 0'), ('log_frequency', 0, 'log_frequency must be an integer >= 1'),
    ('warmup_epochs', 1, 'warmup_epochs=1 leaves no epoch'), ('device', 'tpu', "device must be 'cpu'"),
    ('metrics', None, 'metrics must be callable'), ('optimizer', None, 'optimizer must be a torch.optim.Optimizer')])
def test_bad_arguments_are_refused_by_name(argument, value, message):
    """Out-of-range counts, an unknown device, a missing metrics or optimizer: an error naming the argument."""
    model = ConvSpace()
    with pytest.raises((ValueError, TypeError), match=message):
        _trainer(model, **{argument: value})


def test_plain_module_is_refused_with_the_conversion():
    """A plain nn.Module (NNI 2.x style) is refused with how to make it an NNI 3.0 ModelSpace."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(TypeError, match='inherit from nni.nas.nn.pytorch.ModelSpace'):
        _trainer(model)


def test_device_accepts_names_and_torch_devices():
    """'cpu' and torch.device('cpu') give Lightning's CPU accelerator; absent CUDA and early export are refused."""
    for device in ('cpu', torch.device('cpu')):
        model = ConvSpace()
        trainer = _trainer(model, device=device)
        assert type(trainer.evaluator.trainer.accelerator).__name__ == 'CPUAccelerator'
    with pytest.raises(RuntimeError, match='call trainer.train'):
        trainer.export()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='torch sees 0 CUDA device'):
            _trainer(ConvSpace(), device='cuda')
