"""The mixed op that replaces NNI's ``Cell`` (NASNet, ENAS, AmoebaNet, PNAS, DARTS and users' cells).

A cell has ``num_nodes`` nodes of ``num_ops_per_node`` slots. Each slot has an input label (which earlier state
it reads) and an operation label (what it applies); a node is the sum of its slots, and the cell's output is the
concatenation of its nodes, or with ``merge_op='loose_end'`` of the nodes no slot reads. Operation candidates are
built per input index (NNI's op factories give an operation on a reduction cell's input stride 2, on a node's
input stride 1), so every (input, operation) pair outputs the node's shape.

Weight step: each slot runs only its sampled operation on its sampled input. Architecture step: a slot gates its
operation label over the gated operations applied to the active input, and its input label over the active
operation applied to each gated input (outputs share a shape; the raw inputs need not). With ``loose_end`` the
nodes the sampled architecture reads are zeros in the concatenation, so the cell keeps the supernet's output
width: a consumer then sees exactly the loose ends, as NNI's fixed cell gives them to a consumer built for them.
"""

from __future__ import annotations

from typing import Any, List, Optional, Union

import torch
from torch import nn
from nni.nas.nn.pytorch import Cell

from .._nni_internals import create_cell_op_candidates, preprocess_cell_inputs
from ..labels import ALWAYS, Choice, Condition
from .base import MixedOp, register_choice
from .gate import gate
from .subnet import subnet_of

__all__ = ['MixedCell']


class MixedCell(MixedOp):
    """NNI's ``Cell`` with one input label and one operation label per slot.

    Args:
        cell: the cell to replace (its preprocessor, postprocessor and candidates are taken over).
        routing: the supernet's routing.
        slots: per slot, its input :class:`Choice`, its operation :class:`Choice`, and its candidates: one list of
            operation modules per input index.
    """

    def __init__(self, cell: Cell, routing, slots: list[tuple[Choice, Choice, list[nn.ModuleList]]]):
        super().__init__(routing, [m for inputs, ops in zip(cell.inputs, cell.ops)
                                   for pair in zip(inputs, ops) for m in (pair[0].choice, pair[1].choice)])
        self.preprocessor, self.postprocessor = cell.preprocessor, cell.postprocessor
        self.num_nodes, self.num_ops_per_node = cell.num_nodes, cell.num_ops_per_node
        self.num_predecessors, self.merge_op, self.concat_dim = cell.num_predecessors, cell.merge_op, cell.concat_dim
        self.cell_label = cell.label
        self.inputs = [inputs for inputs, _, _ in slots]
        self.choices = [ops for _, ops, _ in slots]
        self.candidates = nn.ModuleList(nn.ModuleList(per_input) for _, _, per_input in slots)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for inputs, ops in zip(self.inputs, self.choices) for label in (inputs.label, ops.label))

    def extra_repr(self) -> str:
        return f'label={self.cell_label!r}, nodes={self.num_nodes}, ops_per_node={self.num_ops_per_node}, ' \
               f'merge_op={self.merge_op!r}'

    def forward(self, *inputs: Any) -> Any:
        processed = preprocess_cell_inputs(self.num_predecessors, *inputs)
        states = list(self.preprocessor(processed))
        used = set()
        for node in range(self.num_nodes):
            outputs = []
            for slot in range(node * self.num_ops_per_node, (node + 1) * self.num_ops_per_node):
                source = self.selection(self.inputs[slot].label).active[0]
                used.add(source)
                outputs.append(self._slot(slot, states, source))
            states.append(outputs[0] if len(outputs) == 1 else torch.stack(outputs).sum(0))
        return self.postprocessor(self._merged(states, used), processed)

    def _slot(self, slot: int, states: list, source: int) -> torch.Tensor:
        """The slot's output: its operation on its input, gated in an architecture step."""
        op_label, input_label = self.choices[slot].label, self.inputs[slot].label
        operation = self.selection(op_label).active[0]
        per_input = self.candidates[slot]
        y = per_input[source][operation](states[source])
        op_selection, input_selection = self.selection(op_label), self.selection(input_label)
        if op_selection.is_gated:
            y = gate(y, op_selection, operation, lambda k: per_input[source][k](states[source]), op_label,
                     inputs=states[source], recomputes=True)
        if input_selection.is_gated:
            y = gate(y, input_selection, source, lambda j: per_input[j][operation](states[j]), input_label,
                     inputs=[states[j] for j in input_selection.gated], recomputes=True)
        return y

    def _merged(self, states: list, used: set[int]) -> torch.Tensor:
        nodes = range(self.num_predecessors, len(states))
        if self.merge_op == 'loose_end':
            return torch.cat([torch.zeros_like(states[k]) if k in used else states[k] for k in nodes],
                             self.concat_dim)
        return torch.cat([states[k] for k in nodes], self.concat_dim)

    def candidate_outputs(self, *inputs: Any):
        """Every (input, operation) pair of every slot on its input (states along the routed architecture)."""
        states = self.states(*inputs)
        for slot, per_input in enumerate(self.candidates):
            for j, operations in enumerate(per_input):
                for name, operation in zip(self.choices[slot].values, operations):
                    yield f'{self.choices[slot].label}={name!r} on input {j}', operation(states[j])

    def states(self, *inputs: Any) -> list:
        """The predecessors after the preprocessor, then every node, along the routed architecture."""
        states = list(self.preprocessor(preprocess_cell_inputs(self.num_predecessors, *inputs)))
        for node in range(self.num_nodes):
            slots = range(node * self.num_ops_per_node, (node + 1) * self.num_ops_per_node)
            states.append(sum(self._slot(s, states, self.selection(self.inputs[s].label).active[0]) for s in slots))
        return states

    def selected_children(self):
        for slot, per_input in enumerate(self.candidates):
            labels = (self.inputs[slot].label, self.choices[slot].label)
            for j, operations in enumerate(per_input):
                for name, operation in zip(self.choices[slot].values, operations):
                    yield operation, Condition(labels, frozenset([((j,), name)]))
        yield self.preprocessor, ALWAYS
        yield self.postprocessor, ALWAYS

    def freeze(self, sample: dict[str, Any]) -> nn.Module:
        """The cell at the sample's inputs and operations, with the supernet's weights."""
        self.validate(sample)
        chosen = [(sample[inputs.label][0], ops.values.index(sample[ops.label]))
                  for inputs, ops in zip(self.inputs, self.choices)]
        operations = [subnet_of(self.candidates[slot][j][o], sample) for slot, (j, o) in enumerate(chosen)]
        return FrozenCell(subnet_of(self.preprocessor, sample), subnet_of(self.postprocessor, sample),
                          operations, [j for j, _ in chosen], self)

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict, mutate_kwargs: dict) -> 'MixedCell | None':
        """Mutation hook: replace a ``Cell``, building operation candidates for every input index."""
        if not isinstance(module, Cell):
            return None
        slots = []
        for node, (inputs, ops) in enumerate(zip(module.inputs, module.ops)):
            node_index = node + module.num_predecessors
            for op_index, (input_choice, layer_choice) in enumerate(zip(inputs, ops)):
                input_choice_ = Choice(input_choice.label, 'input', tuple(range(node_index)))
                op_choice = Choice(layer_choice.label, 'layer', tuple(layer_choice.names))
                register_choice(mutate_kwargs, input_choice_)
                register_choice(mutate_kwargs, op_choice)
                slots.append((input_choice_, op_choice, _per_input(module, layer_choice, node_index, op_index)))
        return cls(module, mutate_kwargs['arch'].routing, slots)


def _per_input(cell: Cell, layer_choice: nn.Module, node_index: int, op_index: int) -> list[nn.ModuleList]:
    """Operation candidates per input index: built by the cell's factory, or the choice's own modules."""
    if cell.op_candidates_factory is None:
        shared = nn.ModuleList(list(layer_choice))
        return [shared] * node_index
    per_input = []
    for j in range(node_index):
        built, _ = create_cell_op_candidates(cell.op_candidates_factory, node_index, op_index, j)
        per_input.append(nn.ModuleList(list(built.values()) if isinstance(built, dict) else list(built)))
    return per_input


class FrozenCell(nn.Module):
    """A cell at one architecture: each slot's chosen operation on its chosen input.

    With ``merge_op='loose_end'`` the nodes read by a slot are zeros in the concatenation (the supernet's width).
    Called as NNI's cells are: with a list of the ``num_predecessors`` inputs, or with the inputs themselves (up to
    four); TorchScript compiles it.
    """

    def __init__(self, preprocessor: nn.Module, postprocessor: nn.Module, operations: list[nn.Module],
                 sources: list[int], cell: MixedCell):
        super().__init__()
        self.preprocessor, self.postprocessor = preprocessor, postprocessor
        self.operations = nn.ModuleList(operations)
        self.sources = list(sources)
        self.num_nodes, self.num_ops_per_node = cell.num_nodes, cell.num_ops_per_node
        self.num_predecessors, self.merge_op, self.concat_dim = cell.num_predecessors, cell.merge_op, cell.concat_dim

    def forward(self, inputs: Union[List[torch.Tensor], torch.Tensor], input1: Optional[torch.Tensor] = None,
                input2: Optional[torch.Tensor] = None, input3: Optional[torch.Tensor] = None):
        if isinstance(inputs, torch.Tensor):
            processed = [inputs]
            for x in [input1, input2, input3]:
                if x is not None:
                    processed.append(x)
        else:
            processed = list(inputs)
        if len(processed) != self.num_predecessors:
            raise ValueError(f'The cell takes {self.num_predecessors} inputs (num_predecessors), got '
                             f'{len(processed)}.')
        states = list(self.preprocessor(processed))
        node = processed[0]  # each node's sum; the first slot of a node sets it
        for slot, operation in enumerate(self.operations):
            y = operation(states[self.sources[slot]])
            node = y if slot % self.num_ops_per_node == 0 else node + y
            if slot % self.num_ops_per_node == self.num_ops_per_node - 1:
                states.append(node)
        merged = []
        for k in range(self.num_predecessors, len(states)):
            read = self.merge_op == 'loose_end' and k in self.sources
            merged.append(torch.zeros_like(states[k]) if read else states[k])
        return self.postprocessor(torch.cat(merged, self.concat_dim), processed)
