"""Latency in a real search: steering to the faster of two equally accurate candidates, reports, exports."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nni.nas.nn.pytorch import LayerChoice, ModelSpace
from nni_proxyless import Proxyless
from nni_proxyless.latency import build_latency_table

from conftest import ConvSpace, digits_evaluator, nni_reports, run_search


class Wasteful(nn.Module):
    """Computes the same function as a plain linear layer, plus discarded work that makes it slow."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.waste = nn.Linear(width, 4096)

    def forward(self, x):
        self.waste(x).relu_()
        return self.linear(x)


class TwinSpace(ModelSpace):
    """Each choice: a linear layer, or the same layer with several times its cost in discarded work."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(64, 32)
        self.choices = nn.ModuleList([
            LayerChoice({'fast': nn.Linear(32, 32), 'slow': Wasteful(32)}, label=f'c{i}') for i in range(2)])
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x.flatten(1)))
        for choice in self.choices:
            x = torch.relu(choice(x))
        return self.head(x)


@pytest.fixture(scope='module')
def twin_table(tmp_path_factory):
    """The twins measured on this CPU (cached in a temporary folder)."""
    table = build_latency_table(TwinSpace(), 'cpu', (64, 1, 8, 8), cache_dir=tmp_path_factory.mktemp('cache'))
    assert table.predict({'c0': 'slow', 'c1': 'slow'}) > 3 * table.predict({'c0': 'fast', 'c1': 'fast'})
    return table


def _fast_probability(table, seed: int, tmp_path, **latency) -> float:
    torch.manual_seed(seed)
    strategy = Proxyless(arch_update_every=1, seed=seed, **latency)
    run_search(TwinSpace(), strategy, digits_evaluator(epochs=3), tmp_path / str(seed))
    return min(strategy.arch.probs(f'c{i}')[0].item() for i in range(2))


def test_latency_loss_steers_to_the_fast_twin(twin_table, tmp_path):
    """With the latency loss on, both choices favour the fast twin in at least 9 of 10 seeds."""
    fast = twin_table.predict({'c0': 'fast', 'c1': 'fast'})
    probabilities = [_fast_probability(twin_table, seed, tmp_path, applied_hardware=twin_table, ref_latency=fast,
                                       grad_reg_loss_params={'lambda': 0.1}) for seed in range(10)]
    assert sum(p > 0.5 for p in probabilities) >= 9, probabilities


def test_without_latency_the_twins_stay_even(tmp_path):
    """With no latency term the twins are equally accurate: neither is forced (mean probability near 1/2).

    At the official rate: the default 'auto' gives these 48 steps room to break the tie, and then one twin wins
    (whichever the search happened to train more), which says nothing about the latency term."""
    probabilities = [_fast_probability(None, seed, tmp_path, arc_learning_rate=1e-3) for seed in range(6)]
    assert sum(p > 0.5 for p in probabilities) <= 5
    assert 0.40 < sum(probabilities) / len(probabilities) < 0.55, probabilities


def test_reports_and_exports_carry_latency(twin_table, tmp_path, monkeypatch):
    """Per-epoch reports carry expected and argmax latency in ms; exports carry their predicted latency."""
    reports = nni_reports(monkeypatch)['PERIODICAL']
    strategy = Proxyless(arch_update_every=1, seed=0, applied_hardware=twin_table, ref_latency=1.0)
    exp = run_search(TwinSpace(), strategy, digits_evaluator(epochs=2), tmp_path)
    assert len(reports) == 2 and {'default', 'expected_latency_ms', 'argmax_latency_ms'} <= set(reports[-1])
    assert reports[-1]['argmax_latency_ms'] == pytest.approx(twin_table.predict(strategy.arch.argmax()))
    for arch in exp.export_top_models(top_k=4, formatter='dict'):
        assert arch.latency == pytest.approx(twin_table.predict(arch)) and arch.latency_unit == 'ms'


def test_latency_target_limits_the_export(twin_table, tmp_path):
    """With latency_target between the all-fast and all-slow latencies, no export exceeds the target."""
    fast = twin_table.predict({'c0': 'fast', 'c1': 'fast'})
    slow = twin_table.predict({'c0': 'slow', 'c1': 'slow'})
    target = (fast + slow) / 2
    strategy = Proxyless(arch_update_every=1, seed=0, applied_hardware=twin_table, latency_target=target,
                         grad_reg_loss_type=None)
    exp = run_search(TwinSpace(), strategy, digits_evaluator(epochs=1), tmp_path)
    exported = exp.export_top_models(top_k=4, formatter='dict')
    # Brute force: every architecture within the target, the most probable first.
    p = {label: dict(zip(('fast', 'slow'), strategy.arch.probs(label).tolist())) for label in ('c0', 'c1')}
    within = [{'c0': a, 'c1': b} for a in ('fast', 'slow') for b in ('fast', 'slow')
              if twin_table.predict({'c0': a, 'c1': b}) <= target]
    within.sort(key=lambda arch: -p['c0'][arch['c0']] * p['c1'][arch['c1']])
    assert [dict(a) for a in exported] == within and {'c0': 'slow', 'c1': 'slow'} not in within


def test_unreachable_target_is_refused_before_training(twin_table, tmp_path):
    """A target below the fastest architecture is refused as soon as the table exists, before any training:
    the message names the target, the unit, the fastest architecture's predicted latency and the fix."""
    fastest = min(twin_table.predict({'c0': a, 'c1': b}) for a in ('fast', 'slow') for b in ('fast', 'slow'))
    space = TwinSpace()
    before = [(p, p.detach().clone()) for p in space.parameters()]
    strategy = Proxyless(seed=0, applied_hardware=twin_table, latency_target=fastest / 2, grad_reg_loss_type=None)
    with pytest.raises(ValueError) as refused:
        run_search(space, strategy, digits_evaluator(epochs=1, limit_train_batches=2), tmp_path)
    message = str(refused.value)
    assert f'latency_target={fastest / 2:g} ms cannot be met' in message
    assert f'predicted at {fastest:.4g} ms' in message and 'Set latency_target to at least' in message
    assert all(torch.equal(p, copy) for p, copy in before)  # nothing trained
    Proxyless(seed=0, applied_hardware=twin_table, latency_target=fastest * 1.001).mutate_model(TwinSpace())


@pytest.mark.parametrize('kwargs,message', [
    (dict(applied_hardware='tpu'), "Unknown applied_hardware 'tpu'"),
    (dict(applied_hardware='cpu', grad_reg_loss_type='add#log'), 'grad_reg_loss_type must be'),
    (dict(applied_hardware='cpu', grad_reg_loss_type='mul#log', grad_reg_loss_params={'alpha': 1}),
     r"needs grad_reg_loss_params with 'alpha', 'beta'; missing 'beta'"),
    (dict(applied_hardware='cpu', ref_latency=-1), 'ref_latency must be a positive number'),
    (dict(applied_hardware='cpu', dummy_input=(1, 0, 8)), 'dummy_input must be an input shape'),
    (dict(applied_hardware='missing.json'), r"must be an existing latency table file \(\.json\), got 'missing.json'"),
    (dict(latency_target=5.0), 'latency_target needs applied_hardware'),
    (dict(arc_learning_rate=0), 'arc_learning_rate must be a positive number'),
    (dict(binary_mode='three'), "binary_mode must be 'two' or 'full_v2'"),
    (dict(arch_update_every=0), 'arch_update_every must be an integer >= 1'),
    (dict(applied_hardware='cpu', predictor_options={'threads': 0}), 'threads must be an integer >= 1'),
])
def test_bad_arguments_are_refused_at_construction(kwargs, message):
    """Bad strategy arguments raise in the constructor, naming the value and what is allowed."""
    with pytest.raises(ValueError, match=message):
        Proxyless(**kwargs)


def test_absent_nn_meter_predictor_fails_at_construction(tmp_path, monkeypatch):
    """Offline without nn-Meter's files, Proxyless(applied_hardware=<device>) fails at once, saying where to look."""
    import time
    monkeypatch.setenv('HOME', str(tmp_path))
    started = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="No nn-Meter predictor for 'cortexA76cpu_tflite21' found"):
        Proxyless(applied_hardware='cortexA76cpu_tflite21', predictor_options={'predictor_dir': tmp_path})
    assert time.perf_counter() - started < 1.0


def test_cpu_latency_in_a_search(tmp_path):
    """applied_hardware='cpu' measures the space, and the search reports the argmax latency from that table."""
    strategy = Proxyless(seed=0, applied_hardware='cpu', dummy_input=(1, 1, 8, 8), ref_latency=1.0,
                         predictor_options={'cache_dir': tmp_path / 'cache', 'repeats': 3})
    run_search(ConvSpace(), strategy, digits_evaluator(epochs=1, limit_train_batches=3), tmp_path)
    assert strategy.latency_table is not None and strategy.latency_table.unit == 'ms'
    assert set(strategy.latency_table.labels) == {'conv1', 'conv2'}
