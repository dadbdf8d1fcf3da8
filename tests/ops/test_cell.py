"""NNI's Cell and expression depths: gate gradients against explicit outputs, one operation per slot."""

from __future__ import annotations

import nni
import pytest
import torch
from torch import nn

from nni.nas.nn.pytorch import Cell, ModelSpace, Repeat
from nni_proxyless.arch import ArchParameters
from nni_proxyless.routing import Selection
from nni_proxyless.supernet import build_supernet

from test_sliced import _logit_grad, _loss


class Counting(nn.Linear):
    """A linear operation that counts its calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.tanh(super().forward(x))


class ToyCell(ModelSpace):
    """Two predecessors of different widths (3 and 4), two nodes, operations built per input index."""

    def __init__(self, merge_op: str = 'all'):
        super().__init__()
        factory = {name: (lambda scale: lambda node, op, inp: Counting(3 if inp == 0 else 4, 4))(scale)
                   for scale in (1, 2, 3) for name in [f'op{scale}']}
        self.cell = Cell(factory, num_nodes=2, num_predecessors=2, merge_op=merge_op, label='cell')

    def forward(self, x, y):
        return self.cell([x, y])


def _toy(seed: int = 3):
    torch.manual_seed(0)
    arch = ArchParameters(seed=0)
    net = build_supernet(ToyCell(), arch)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for label in arch.labels():
            arch.logit(label).copy_(torch.randn(len(arch.choices[label].values), generator=gen))
    return net, arch, net.cell


def test_weight_step_runs_only_the_sampled_pairs():
    """Each slot runs exactly one (input, operation) candidate per forward, whatever the draw."""
    net, arch, cell = _toy()
    x, y = torch.randn(2, 3), torch.randn(2, 4)
    for step in range(6):
        arch.routing.set(arch.sample(step))
        for operations in cell.candidates:
            for per_input in operations:
                for op in per_input:
                    op.calls = 0
        net(x, y)
        calls = [sum(op.calls for per_input in operations for op in per_input) for operations in cell.candidates]
        assert calls == [1, 1]


@pytest.mark.parametrize('mode', ['two', 'full_v2'])
def test_cell_gates_match_explicit_outputs(mode):
    """Every slot: y = sum_o g_o O(j_a, o) + sum_j h_j O(j, o_a) - O(j_a, o_a), as a function of explicit gates
    (the first-order model the binary gates differentiate); all labels' gradients match autograd's."""
    net, arch, cell = _toy()
    x, y = torch.randn(2, 3), torch.randn(2, 4)
    selections = arch.sample_for_update(step=5, mode=mode)
    arch.routing.set(selections)
    labels = arch.labels()
    ours = dict(zip(labels, torch.autograd.grad(_loss(net(x, y)), [arch.logit(l) for l in labels])))

    gates = {label: torch.nn.functional.one_hot(torch.tensor(selections[label].active[0]),
                                                len(arch.choices[label].values)).float().requires_grad_()
             for label in labels}
    states = [x, y]
    for slot in range(2):
        input_label, op_label = cell.inputs[slot].label, cell.choices[slot].label
        j_a, o_a = selections[input_label].active[0], selections[op_label].active[0]
        per_input = cell.candidates[slot]
        by_op = sum(gates[op_label][o] * per_input[j_a][o](states[j_a]) for o in range(3))
        by_input = sum(gates[input_label][j] * per_input[j][o_a](states[j]) for j in range(len(states)))
        states.append(by_op + by_input - per_input[j_a][o_a](states[j_a]))
    brute = torch.autograd.grad(_loss(torch.cat(states[2:], 1)), [gates[l] for l in labels])
    for label, gate_grads in zip(labels, brute):
        support = selections[label].support
        expected = _logit_grad(arch, label, support, {k: gate_grads[k] for k in selections[label].gated})
        torch.testing.assert_close(ours[label], expected)


def test_loose_end_zeroes_the_nodes_a_slot_reads():
    """loose_end: the nodes some slot reads are zeros in the output, the others are the nodes themselves."""
    torch.manual_seed(0)
    arch = ArchParameters(seed=0)
    net = build_supernet(ToyCell('loose_end'), arch)
    x, y = torch.randn(2, 3), torch.randn(2, 4)
    sample = {'cell/input_2_0': [1], 'cell/op_2_0': 'op1', 'cell/input_3_0': [2], 'cell/op_3_0': 'op2'}
    arch.routing.set(arch.selections_for(sample))
    out = net(x, y)
    node2 = net.cell.candidates[0][1][0](y)
    node3 = net.cell.candidates[1][2][1](node2)
    torch.testing.assert_close(out, torch.cat([torch.zeros_like(node2), node3], 1))


class PlainCell(ModelSpace):
    """ToyCell with plain linear operations (Counting's ``super().forward`` is not TorchScript)."""

    def __init__(self, merge_op: str):
        super().__init__()
        factory = {name: lambda node, op, inp: nn.Linear(3 if inp == 0 else 4, 4) for name in ('op1', 'op2')}
        self.cell = Cell(factory, num_nodes=2, num_predecessors=2, merge_op=merge_op, label='cell')

    def forward(self, x, y):
        return self.cell([x, y])


@pytest.mark.parametrize('merge_op', ['all', 'loose_end'])
def test_frozen_cell_takes_a_list_or_the_inputs_and_scripts(merge_op):
    """The exported cell gives the supernet's output at its architecture called with a list of its inputs, with
    the inputs themselves, and compiled by TorchScript."""
    torch.manual_seed(0)
    arch = ArchParameters(seed=0)
    net = build_supernet(PlainCell(merge_op), arch)
    x, y = torch.randn(2, 3), torch.randn(2, 4)
    sample = {'cell/input_2_0': [1], 'cell/op_2_0': 'op1', 'cell/input_3_0': [2], 'cell/op_3_0': 'op2'}
    arch.routing.set(arch.selections_for(sample))
    frozen = net.cell.freeze(sample)
    expected = net(x, y)
    torch.testing.assert_close(frozen([x, y]), expected)
    torch.testing.assert_close(frozen(x, y), expected)
    torch.testing.assert_close(torch.jit.script(frozen)([x, y]), expected)
    with pytest.raises(ValueError, match='The cell takes 2 inputs'):
        frozen(x)


class ThreeStages(ModelSpace):
    """Three Repeats splitting one depth label as NDS stages do: d // 3, (2d) // 3 - d // 3, d - (2d) // 3."""

    def __init__(self):
        super().__init__()
        d = nni.choice('d', [3, 4, 6])
        depths = [(i + 1) * d // 3 - i * d // 3 for i in range(3)]
        self.stages = nn.ModuleList(Repeat(lambda i: nn.Sequential(nn.Linear(4, 4), nn.Tanh()), depth)
                                    for depth in depths)

    def forward(self, x):
        for stage in self.stages:
            x = stage(x)
        return x


@pytest.mark.parametrize('active', [0, 2])
def test_expression_depths_share_one_label_and_sum_its_gates(active):
    """One label, three stages: dL/dg_v sums over the stages, each stage's o_v taken at its own depth(v)."""
    torch.manual_seed(0)
    arch = ArchParameters(seed=0)
    net = build_supernet(ThreeStages(), arch)
    assert arch.labels() == ['d']
    x = torch.randn(2, 4)
    arch.routing.set({'d': Selection((active,), (0, 1, 2), (0, 1, 2), arch.logit('d'))})
    (ours,) = torch.autograd.grad(_loss(net(x)), [arch.logit('d')])

    gates = torch.nn.functional.one_hot(torch.tensor(active), 3).float().requires_grad_()
    h = x
    for i, stage in enumerate(net.stages):
        outputs = []
        for d in (3, 4, 6):
            z = h
            for block in stage.blocks[:(i + 1) * d // 3 - i * d // 3]:
                z = block(z)
            outputs.append(z)
        h = sum(g * o for g, o in zip(gates, outputs))
    (gate_grads,) = torch.autograd.grad(_loss(h), [gates])
    torch.testing.assert_close(ours, _logit_grad(arch, 'd', (0, 1, 2), dict(enumerate(gate_grads))))
