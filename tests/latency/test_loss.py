"""The latency losses against hand computation, and their gradient on the architecture logits."""

from __future__ import annotations

import math

import pytest
import torch

from nni_proxyless.arch import ArchParameters
from nni_proxyless.labels import Choice
from nni_proxyless.latency import LatencyLoss, LatencyObjective, LatencyTable, Term


def test_mul_log_by_hand():
    """alpha * CE * (log E / log ref) ** beta with alpha 0.2, beta 0.3, CE 2, E 30 ms, ref 20 ms."""
    loss = LatencyLoss('mul#log', {'alpha': 0.2, 'beta': 0.3}, 20.0)
    value = loss(torch.tensor(2.0), torch.tensor(30.0)).item()
    assert value == pytest.approx(0.2 * 2.0 * (math.log(30) / math.log(20)) ** 0.3)


def test_add_linear_by_hand():
    """CE + lambda * (E - ref) / ref = 2 + 0.1 * (30 - 20) / 20 = 2.05."""
    loss = LatencyLoss('add#linear', {'lambda': 0.1}, 20.0)
    assert loss(torch.tensor(2.0), torch.tensor(30.0)).item() == pytest.approx(2.05)


def test_none_is_the_task_loss():
    """Without a latency term the loss is the task loss."""
    assert LatencyLoss(None, {}, 20.0)(torch.tensor(2.0), torch.tensor(30.0)).item() == 2.0


@pytest.mark.parametrize('kind,params,ref,message', [
    ('mul#log', {'alpha': 0.2}, 20.0, r"needs grad_reg_loss_params with 'alpha', 'beta'; missing 'beta'"),
    ('add#linear', {}, 20.0, r"needs grad_reg_loss_params with 'lambda'; missing 'lambda'"),
    ('add#linear', {'lambda': True}, 20.0, r"grad_reg_loss_params\['lambda'\] must be a finite number, got True"),
    ('add#log', {}, 20.0, "grad_reg_loss_type must be"),
    ('add#linear', {'lambda': 0.1}, 0.0, 'ref_latency must be a positive number'),
    ('mul#log', {'alpha': 0.2, 'beta': 0.3}, 0.8, 'divides by zero or inverts'),
])
def test_bad_arguments_are_named(kind, params, ref, message):
    """Missing parameters, unknown kinds and bad reference latencies raise errors naming them."""
    with pytest.raises(ValueError, match=message):
        LatencyLoss(kind, params, ref)


def _objective(kind, params):
    arch = ArchParameters(seed=0)
    arch.register(Choice('op', 'layer', ('fast', 'medium', 'slow')))
    table = LatencyTable(labels={'op': ['fast', 'medium', 'slow']}, fixed=5.0, terms=[Term((1.0, 4.0, 20.0), 'op')])
    return arch, LatencyObjective(table, LatencyLoss(kind, params, 10.0))


@pytest.mark.parametrize('kind,params', [('add#linear', {'lambda': 0.1}), ('mul#log', {'alpha': 0.2, 'beta': 0.3})])
@pytest.mark.parametrize('mode', ['two', 'full_v2'])
def test_gradient_reaches_logits_and_favours_cheaper(kind, params, mode):
    """d(loss)/d(logits) from the latency term alone: the cheaper candidate of every sampled pair gains."""
    arch, objective = _objective(kind, params)
    for step in range(10):
        paths = arch.sample_for_update(step, mode)
        loss = objective(torch.tensor(1.0, requires_grad=True), paths, arch)
        (grad,) = torch.autograd.grad(loss, [arch.logit('op')])
        support = sorted(paths['op'].support)
        assert grad[support].abs().sum() > 0
        # gradient descent raises the logit of the cheapest in the support and lowers the dearest
        assert grad[support[0]] < 0 < grad[support[-1]]
        outside = [k for k in range(3) if k not in support]
        assert all(grad[k] == 0 for k in outside)
