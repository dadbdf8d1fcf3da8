"""Binary-gate gradients against brute force: gates as explicit variables, autograd, softmax Jacobian."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from nni.mutable import frozen_context
from nni.nas.nn.pytorch import InputChoice, LayerChoice, Repeat
from nni_proxyless.arch import ArchParameters, Selection
from nni_proxyless.ops import MixedInput, MixedLayer, MixedRepeat


@pytest.fixture(autouse=True)
def _choices_outside_a_model_space():
    """NNI creates choices inside a model space's frozen context; these tests build them bare."""
    with frozen_context():
        yield


def _mixed(module, hook):
    arch = ArchParameters(seed=0)
    op = hook(module, 'op', {}, {'arch': arch})
    (label,) = op.labels
    with torch.no_grad():
        arch.logit(label).copy_(torch.randn(len(arch.choices[label].values),
                                            generator=torch.Generator().manual_seed(3)))
    return op, arch.logit(label)


def _route(op, selection):
    """Route the op's one label (ops built by separate ``_mixed`` calls have separate routings)."""
    (label,) = op.labels
    op.routing.set({label: selection})


def _loss(y: torch.Tensor) -> torch.Tensor:
    target = torch.linspace(-1, 1, y.numel()).view_as(y)
    return (y * target).sum() + 0.1 * (y ** 2).sum()


def _expected(logits, support, gate_grads_by_candidate):
    """sum_n dL/dg_n * dw_n/da_m with w = softmax(logits[support]), by autograd's Jacobian of softmax."""
    jac = jacobian(lambda a: torch.softmax(a, -1), logits.detach()[list(support)])
    expected = torch.zeros_like(logits)
    for row, n in enumerate(support):
        expected[list(support)] += gate_grads_by_candidate.get(n, 0.0) * jac[row]
    return expected


def _layer_choice():
    torch.manual_seed(0)
    return LayerChoice([nn.Linear(3, 4), nn.Sequential(nn.Linear(3, 4), nn.Tanh()), nn.Linear(3, 4)], label='op')


@pytest.mark.parametrize('active,support', [(1, (0, 1, 2)), (2, (0, 2)), (0, (0, 1))])
def test_layer_gate_gradient_matches_brute_force(active, support):
    """dL/da from the gate estimator equals autograd over y = sum_k g_k o_k at one-hot g, times softmax' Jacobian."""
    op, logits = _mixed(_layer_choice(), MixedLayer.mutate)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    _route(op, Selection(active=(active,), gated=support, support=support, logits=logits))
    (ours,) = torch.autograd.grad(_loss(op(x)), [logits])

    gates = torch.zeros(3, requires_grad=True)
    with torch.no_grad():
        gates[active] = 1.0
    y = sum(gates[k] * candidate(x) for k, candidate in enumerate(op.candidates))
    (gate_grads,) = torch.autograd.grad(_loss(y), [gates])
    expected = _expected(logits, support, {n: gate_grads[n] for n in support})
    torch.testing.assert_close(ours, expected)


def test_chained_layers_gate_through_the_active_path():
    """Two mixed ops in a row: the first op's gate gradient flows through the second op's active candidate."""
    first, a1 = _mixed(_layer_choice(), MixedLayer.mutate)
    torch.manual_seed(5)
    second, a2 = _mixed(LayerChoice([nn.Linear(4, 4), nn.Linear(4, 4)], label='op2'), MixedLayer.mutate)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    _route(first, Selection((0,), (0, 1, 2), (0, 1, 2), a1))
    _route(second, Selection((1,), (0, 1), (0, 1), a2))
    ours = torch.autograd.grad(_loss(second(first(x))), [a1, a2])

    g1, g2 = torch.tensor([1.0, 0, 0], requires_grad=True), torch.tensor([0, 1.0], requires_grad=True)
    y1 = sum(g1[k] * c(x) for k, c in enumerate(first.candidates))
    y2 = sum(g2[k] * c(y1) for k, c in enumerate(second.candidates))
    d1, d2 = torch.autograd.grad(_loss(y2), [g1, g2])
    torch.testing.assert_close(ours[0], _expected(a1, (0, 1, 2), dict(enumerate(d1))))
    torch.testing.assert_close(ours[1], _expected(a2, (0, 1), dict(enumerate(d2))))


@pytest.mark.parametrize('active', [0, 2])
def test_repeat_depth_gate_matches_brute_force(active):
    """A Repeat's depth gate: y = sum_d g_d * (output after d blocks), deeper outputs computed in backward."""
    torch.manual_seed(0)
    op, logits = _mixed(Repeat(lambda i: nn.Sequential(nn.Linear(4, 4), nn.Tanh()), (1, 3), label='depth'),
                        MixedRepeat.mutate)
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    _route(op, Selection((active,), (0, 1, 2), (0, 1, 2), logits))
    (ours,) = torch.autograd.grad(_loss(op(x)), [logits])

    outputs, h = [], x
    for block in op.blocks:
        h = block(h)
        outputs.append(h)
    gates = torch.nn.functional.one_hot(torch.tensor(active), 3).float().requires_grad_()
    (gate_grads,) = torch.autograd.grad(_loss(sum(g * o for g, o in zip(gates, outputs))), [gates])
    torch.testing.assert_close(ours, _expected(logits, (0, 1, 2), dict(enumerate(gate_grads))))


def _changed_in_place(y: torch.Tensor) -> torch.Tensor:
    """What a later in-place scaling and ``ReLU(inplace=True)`` do to a gated output."""
    return torch.relu_(y.mul_(2.0))


def test_layer_gate_passes_its_output_on_and_survives_a_change_in_place():
    """A layer's gate hands on the candidate's own output (no copy); a later in-place change of it leaves the gate
    gradient equal to brute force over relu(2 y) (the gate recomputes the active output)."""
    op, logits = _mixed(_layer_choice(), MixedLayer.mutate)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    _route(op, Selection(active=(1,), gated=(0, 1, 2), support=(0, 1, 2), logits=logits))
    produced = []
    handle = op.candidates[1].register_forward_hook(lambda module, args, output: produced.append(output))
    y = op(x)
    handle.remove()
    assert y.untyped_storage().data_ptr() == produced[0].untyped_storage().data_ptr()
    (ours,) = torch.autograd.grad(_loss(_changed_in_place(y)), [logits])

    gates = torch.tensor([0.0, 1.0, 0.0], requires_grad=True)
    y = sum(gates[k] * candidate(x) for k, candidate in enumerate(op.candidates))
    (gate_grads,) = torch.autograd.grad(_loss(torch.relu(y * 2.0)), [gates])
    torch.testing.assert_close(ours, _expected(logits, (0, 1, 2), dict(enumerate(gate_grads))))


@pytest.mark.parametrize('active', [0, 1])
def test_repeat_gate_survives_a_change_in_place(active):
    """A Repeat's deeper outputs continue from its stored block outputs, so its gate passes on a copy: a later
    in-place change of the output leaves the gate gradient equal to brute force."""
    torch.manual_seed(0)
    op, logits = _mixed(Repeat(lambda i: nn.Sequential(nn.Linear(4, 4), nn.Tanh()), (1, 3), label='depth'),
                        MixedRepeat.mutate)
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    _route(op, Selection((active,), (0, 1, 2), (0, 1, 2), logits))
    (ours,) = torch.autograd.grad(_loss(_changed_in_place(op(x))), [logits])

    outputs, h = [], x
    for block in op.blocks:
        h = block(h)
        outputs.append(h)
    gates = torch.nn.functional.one_hot(torch.tensor(active), 3).float().requires_grad_()
    y = sum(g * o for g, o in zip(gates, outputs))
    (gate_grads,) = torch.autograd.grad(_loss(torch.relu(y * 2.0)), [gates])
    torch.testing.assert_close(ours, _expected(logits, (0, 1, 2), dict(enumerate(gate_grads))))


@pytest.mark.parametrize('reduction', ['sum', 'mean', 'concat'])
def test_input_choice_of_two_gates_each_chosen_input(reduction):
    """InputChoice(n_chosen=2): gates on the two chosen inputs (taken in index order, as NNI's fixed
    ChosenInputs takes them), weighted by p over all candidates."""
    op, logits = _mixed(InputChoice(4, 2, reduction=reduction, label='inp'), MixedInput.mutate)
    inputs = list(torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1)))
    chosen = (3, 1)
    _route(op, Selection(chosen, chosen, (0, 1, 2, 3), logits))
    (ours,) = torch.autograd.grad(_loss(op(inputs)), [logits])

    gates = torch.ones(2, requires_grad=True)
    gated = [g * inputs[k] for g, k in zip(gates, sorted(chosen))]
    y = {'sum': lambda t: t[0] + t[1], 'mean': lambda t: (t[0] + t[1]) / 2,
         'concat': lambda t: torch.cat(t, dim=1)}[reduction](gated)
    (gate_grads,) = torch.autograd.grad(_loss(y), [gates])
    torch.testing.assert_close(ours, _expected(logits, (0, 1, 2, 3), dict(zip(sorted(chosen), gate_grads))))


def test_candidates_with_keyword_arguments():
    """Candidates called with keyword arguments run, and are gated, with those arguments."""
    class Scale(nn.Module):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def forward(self, x, *, bias):
            return self.factor * x + bias

    op, logits = _mixed(LayerChoice([Scale(1.0), Scale(3.0)], label='op'), MixedLayer.mutate)
    x = torch.ones(2, requires_grad=True)
    _route(op, Selection((1,), (0, 1), (0, 1), logits))
    y = op(x, bias=torch.full((2,), 0.5))
    torch.testing.assert_close(y, torch.full((2,), 3.5))
    (grad,) = torch.autograd.grad(y.sum(), [logits])
    w = torch.softmax(logits.detach(), -1)
    gate_grads = torch.tensor([1.5 * 2, 3.5 * 2])  # <dL/dy = 1, o_k> for o_0 = 1.5, o_1 = 3.5 on two elements
    torch.testing.assert_close(grad, w * (gate_grads - (w * gate_grads).sum()))


def test_unequal_candidate_shapes_are_named():
    """Gated candidates with different output shapes raise an error naming the label and the shapes."""
    op, logits = _mixed(LayerChoice([nn.Linear(3, 4), nn.Linear(3, 5)], label='widths'), MixedLayer.mutate)
    _route(op, Selection((0,), (0, 1), (0, 1), logits))
    with pytest.raises(ValueError, match=r"'widths'.*\(2, 5\).*\(2, 4\)"):
        torch.autograd.grad(op(torch.randn(2, 3)).sum(), [logits])


@pytest.mark.parametrize('kind', ['layer', 'repeat', 'input'])
def test_input_changed_in_place_after_the_forward_raises(kind):
    """The other candidates' outputs are computed in backward from the op's inputs: one changed in place after
    the forward raises autograd's own error (as for a saved tensor) instead of giving a wrong gate gradient."""
    torch.manual_seed(0)
    xs = [torch.randn(2, 4, generator=torch.Generator().manual_seed(k)) * 1.0 for k in range(3)]
    if kind == 'layer':
        op, logits = _mixed(LayerChoice([nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.Tanh())], label='op'),
                            MixedLayer.mutate)
        run, support = (lambda: op(xs[0])), (0, 1)
    elif kind == 'repeat':
        op, logits = _mixed(Repeat(lambda i: nn.Sequential(nn.Linear(4, 4), nn.Tanh()), (1, 3), label='depth'),
                            MixedRepeat.mutate)
        run, support = (lambda: op(xs[0])), (0, 1, 2)
    else:
        op, logits = _mixed(InputChoice(3, 1, label='inp'), MixedInput.mutate)
        run, support = (lambda: op(xs[::-1])), (0, 2)  # the gated candidate 2 (xs[0]) did not run
    _route(op, Selection((0,), support, support, logits))
    y = run()
    (untouched,) = torch.autograd.grad(_loss(y), [logits], retain_graph=True)  # the same graph, inputs intact
    assert untouched.abs().sum() > 0
    xs[0].mul_(2.0)
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        torch.autograd.grad(_loss(y), [logits])
