"""Argument checks: one wording everywhere, numbers of any numeric type, ``bool`` never taken for a number."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nni_proxyless import Proxyless, _checks
from nni_proxyless.latency import LatencyLoss, LatencyTable, Term
from nni_proxyless.latency.measure import MeasuredPredictor
from nni_proxyless.latency.nnmeter import NnMeterPredictor
from nni_proxyless.reinforce import check_reinforce_options
from nni_proxyless.training import SearchSettings
from nni_proxyless.webui import WebUI


@pytest.mark.parametrize('check, message', [
    (lambda: _checks.integer('n', 0, low=1), 'n must be an integer >= 1, got 0.'),
    (lambda: _checks.integer('n', 2.0, low=1), 'n must be an integer >= 1, got 2.0.'),
    (lambda: _checks.integer('n', 'a', optional=True), "n must be an integer or None, got 'a'."),
    (lambda: _checks.port('port', 70000), 'port must be an integer from 1 to 65535, got 70000.'),
    (lambda: _checks.number('t', -1, positive=True, unit='milliseconds'),
     't must be a positive number of milliseconds, got -1.'),
    (lambda: _checks.number('d', 1.5, low=0, high=1), 'd must be a number from 0 to 1, got 1.5.'),
    (lambda: _checks.number('w', math.nan), 'w must be a finite number, got nan.'),
    (lambda: _checks.number('w', math.inf, positive=True, optional=True),
     'w must be a positive number or None, got inf.'),
    (lambda: _checks.one_of('m', 'three', ('two', 'full_v2')), "m must be 'two' or 'full_v2', got 'three'."),
    (lambda: _checks.one_of('k', 'x', ('a', 'b', None)), "k must be 'a', 'b' or None, got 'x'."),
    (lambda: _checks.mapping('o', {'z': 1}, keys=['b', 'a']), "o must be a dict with keys among ['a', 'b'], got "
                                                             "{'z': 1}."),
    (lambda: _checks.shape('s', (1, 0)), 's must be an input shape of positive integers such as (1, 3, 224, 224), '
                                         'or a tensor, got (1, 0).'),
])
def test_each_check_words_its_refusal_the_same_way(check, message):
    """Every check raises ValueError('<name> must be <allowed>, got <value>.')."""
    with pytest.raises(ValueError) as refused:
        check()
    assert str(refused.value) == message


def test_a_callable_is_refused_with_how_it_is_called():
    """A missing callable is a TypeError that shows the call it must support."""
    with pytest.raises(TypeError) as refused:
        _checks.function('metrics', None, 'metrics(logits, target)')
    assert str(refused.value) == 'metrics must be callable as metrics(logits, target), got None.'


@pytest.mark.parametrize('value', [True, False, np.bool_(True)])
def test_bool_is_not_a_number(value):
    """Booleans are refused where integers or numbers are expected, though Python counts True as 1."""
    for check in (lambda: _checks.integer('n', value), lambda: _checks.number('x', value),
                  lambda: _checks.port('port', value), lambda: _checks.one_of('n', value, (0, 1))):
        with pytest.raises(ValueError, match='must be'):
            check()


@pytest.mark.parametrize('value, expected', [(np.int64(3), 3), (np.int32(3), 3), (np.uint8(3), 3),
                                             (torch.tensor(3).item(), 3)])
def test_integers_of_any_numeric_type_come_back_as_int(value, expected):
    """NumPy integers pass the integer check and are returned as plain ``int``."""
    checked = _checks.integer('n', value, low=0)
    assert checked == expected and type(checked) is int


@pytest.mark.parametrize('value', [np.float32(2.5), np.float64(2.5), np.int64(2), 2])
def test_reals_of_any_numeric_type_come_back_as_float(value):
    """NumPy floats and integers pass the number check and are returned as plain ``float``."""
    checked = _checks.number('x', value, positive=True)
    assert checked == float(value) and type(checked) is float


def _table() -> LatencyTable:
    return LatencyTable(labels={'op': ['a', 'b']}, fixed=1.0, terms=[Term((2.0, 4.0), ('op',))])


def test_public_constructors_take_numpy_scalars():
    """A NumPy seed, counts, learning rate and latencies are accepted and stored as plain Python numbers."""
    strategy = Proxyless(seed=np.int64(0), arch_update_every=np.int32(2), warmup_epochs=np.int64(1),
                         arc_learning_rate=np.float32(1e-3), applied_hardware=_table(),
                         ref_latency=np.float32(4.0), latency_target=np.float32(5.0))
    assert strategy.seed == 0 and type(strategy.seed) is int
    assert type(strategy.settings.arch_update_every) is int and type(strategy.settings.arc_learning_rate) is float
    assert strategy.latency_config.target == 5.0 and type(strategy.latency_config.target) is float
    loss = LatencyLoss('add#linear', {'lambda': np.float32(0.5)}, np.float64(3.0))
    assert (loss.ref_latency, loss.params['lambda']) == (3.0, 0.5) and type(loss.params['lambda']) is float
    assert check_reinforce_options({'samples': np.int64(4)})['samples'] == 4
    assert WebUI(np.int64(8080)).url == 'http://localhost:8080'


@pytest.mark.parametrize('make, message', [
    (lambda: WebUI(True), 'port must be an integer from 1 to 65535, got True.'),
    (lambda: Proxyless(web_ui=True), 'web_ui must be a port number from 1 to 65535, a WebUI or None, got True.'),
    (lambda: Proxyless(web_ui=70000), 'web_ui must be a port number from 1 to 65535, a WebUI or None, got 70000.'),
    (lambda: WebUI(8080, startup_timeout=0), 'startup_timeout must be a positive number of seconds, got 0.'),
    (lambda: WebUI(8080, retrain_top_k=-1), 'retrain_top_k must be an integer >= 0, got -1.'),
    (lambda: Proxyless(seed=True), 'seed must be an integer or None, got True.'),
    (lambda: Proxyless(seed='0'), "seed must be an integer or None, got '0'."),
    (lambda: Proxyless(arch_update='rl'), "arch_update must be 'gradient' or 'reinforce', got 'rl'."),
    (lambda: SearchSettings(warmup_epochs=-1), 'warmup_epochs must be an integer >= 0, got -1.'),
    (lambda: SearchSettings(gradient_clip_val=0), 'gradient_clip_val must be a positive number or None, got 0.'),
    (lambda: Proxyless(applied_hardware=_table(), latency_target=0),
     'latency_target must be a positive number of milliseconds or None, got 0.'),
    (lambda: Proxyless(applied_hardware=_table(), ref_latency=-1),
     'ref_latency must be a positive number of milliseconds, got -1.'),
    (lambda: Proxyless(applied_hardware=_table(), grad_reg_loss_params={'lambda': 'high'}),
     "grad_reg_loss_params['lambda'] must be a finite number, got 'high'."),
    (lambda: Proxyless(predictor_options=[1]), 'predictor_options must be a dict or None, got [1].'),
    (lambda: check_reinforce_options({'baseline_decay': 2}),
     "reinforce_options['baseline_decay'] must be a number from 0 to 1, got 2."),
    (lambda: MeasuredPredictor('cpu', threads=0), 'threads must be an integer >= 1, got 0.'),
    (lambda: MeasuredPredictor('tpu'), "device must be 'cpu' or 'cuda', got 'tpu'."),
    (lambda: NnMeterPredictor('cortexA76cpu_tflite21', unsupported='skip'),
     "unsupported must be 'error' or 'ignore', got 'skip'."),
])
def test_constructors_share_the_wording(make, message):
    """The strategy, the web UI, the latency loss and predictors, REINFORCE: one wording for one mistake."""
    with pytest.raises(ValueError) as refused:
        make()
    assert str(refused.value) == message
