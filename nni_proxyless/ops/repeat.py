"""The mixed op that replaces NNI's ``Repeat`` with a searched depth (a choice, or any expression of choices)."""

from __future__ import annotations

from itertools import islice
from typing import Any, List

import torch
from torch import nn
from nni.mutable import Mutable, SampleValidationError
from nni.nas.nn.pytorch import Repeat

from .._nni_internals import check_any_module_contains
from ._expressions import Arguments
from .base import MixedOp, register_choice
from .gate import gate
from .subnet import subnet_of

__all__ = ['MixedRepeat']


class MixedRepeat(MixedOp):
    """A ``Repeat`` whose depth is a choice or an expression of choices (``nni.choice('d', [4, 8]) // 3``).

    The blocks run in a chain, so the outputs at every depth up to the active one come from one pass; in an
    architecture step each label of the depth is gated over its gated values (the other labels at their active
    values), a deeper output continuing that pass inside backward, without a graph. Several ``Repeat``\\ s whose
    depths read one label (NDS stages split one ``depth`` over three stages) add their gates into that label.

    NNI's NDS stages (``nni.nas.hub.pytorch.nasnet.NDSStage``) pass on the output of the cell before the last one
    too; at depth 1 that is the stage's input, which the stage's ``first_cell_transformation_factory()`` reshapes
    to what the next stage expects (as NNI's own one-shot stages do).
    """

    def __init__(self, repeat: Repeat, routing, where: str):
        super().__init__(routing, [repeat.depth_choice])
        self.depth = Arguments({'depth': repeat.depth_choice}, where)
        self.blocks = nn.ModuleList(list(repeat.blocks))
        factory = getattr(repeat, 'first_cell_transformation_factory', None)
        self.first_output_transformation = factory() if factory is not None else None
        self.passes_lists = factory is not None  # an NDS stage: its cells take and give [pprev, prev]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.depth.labels

    def extra_repr(self) -> str:
        return f'depth={self.depth.values["depth"]!r}'

    def forward(self, x: Any) -> Any:
        depth = self.depth.at(self._routing)['depth']
        outputs = [x]
        for block in islice(self.blocks, depth):
            outputs.append(block(outputs[-1]))
        y = self._finished(outputs[-1], depth)
        for position, label in enumerate(self.labels):
            selection = self.selection(label)
            if selection.is_gated:
                y = gate(y, selection, selection.active[0],
                         lambda k, p=position: self._output_at(self._depth_with(p, k), outputs), label,
                         inputs=outputs)
        return y

    def _depth_with(self, position: int, k: int) -> int:
        values = [self._routing.value(label) for label in self.labels]
        values[position] = self._routing.values(self.labels[position], (k,))[0]
        return self.depth.at_values(tuple(values))['depth']

    def _output_at(self, depth: int, outputs: list) -> Any:
        y = outputs[min(depth, len(outputs) - 1)]
        for block in self.blocks[len(outputs) - 1:depth]:
            y = block(y)
        return self._finished(y, depth)

    def _finished(self, y: Any, depth: int) -> Any:
        if depth == 1 and self.first_output_transformation is not None:
            return type(y)([self.first_output_transformation(y[0]), *y[1:]])
        return y

    def candidate_outputs(self, x: Any):
        depths = sorted({self.depth.at_values(values)['depth'] for values in self.depth.combinations()})
        outputs = [x]
        for block in islice(self.blocks, max(depths)):
            outputs.append(block(outputs[-1]))
        return ((depth, self._finished(outputs[depth], depth)) for depth in depths)

    def selected_children(self):
        for i, block in enumerate(self.blocks):
            yield block, self.depth.condition('depth', lambda depth, i=i: depth > i)
        if self.first_output_transformation is not None:
            yield self.first_output_transformation, self.depth.condition('depth', lambda depth: depth == 1)

    def check_contains(self, sample: dict[str, Any]) -> SampleValidationError | None:
        error = self.mutables[0].check_contains(sample)
        if error is not None:
            return error
        for i, block in enumerate(self.blocks[:self.depth.at_sample(sample)['depth']]):
            error = check_any_module_contains(block, sample, str(i))
            if error is not None:
                return error
        return None

    def freeze(self, sample: dict[str, Any]) -> nn.Module:
        """The first ``depth`` blocks (copies, nested choices frozen), as NNI's fixed ``Repeat`` does; those of an
        NDS stage in a :class:`_ListSequential`, whose forward TorchScript compiles for their lists."""
        self.validate(sample)
        depth = self.depth.at_sample(sample)['depth']
        blocks = [subnet_of(block, sample) for block in self.blocks[:depth]]
        if depth == 1 and self.first_output_transformation is not None:
            return _FirstOutputTransformed(blocks[0], subnet_of(self.first_output_transformation, sample))
        return _ListSequential(*blocks) if self.passes_lists else nn.Sequential(*blocks)

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict, mutate_kwargs: dict) -> 'MixedRepeat | None':
        """Mutation hook: replace a ``Repeat`` whose depth is a choice (a fixed depth is left alone)."""
        if not isinstance(module, Repeat) or not isinstance(module.depth_choice, Mutable):
            return None
        op = cls(module, mutate_kwargs['arch'].routing, f'Repeat at {name!r}')
        depths = {op.depth.at_values(values)['depth'] for values in op.depth.combinations()}
        if not all(isinstance(d, int) and 0 <= d <= len(op.blocks) for d in depths):
            raise ValueError(f'Repeat at {name!r}: depth {module.depth_choice!r} takes the values {sorted(depths)}; '
                             f'depths must be integers from 0 to {len(op.blocks)}.')
        for choice in op.depth.choices.values():
            register_choice(mutate_kwargs, choice)
        return op


class _ListSequential(nn.Sequential):
    """An NDS stage frozen at a depth over 1: its cells in order, as ``nn.Sequential`` runs them, typed for the
    ``[pprev, prev]`` list they pass on (``nn.Sequential``'s forward takes a tensor in TorchScript)."""

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        for block in self:
            x = block(x)
        return x


class _FirstOutputTransformed(nn.Module):
    """A one-block NDS stage: the block, then the stage's reshaping of the output passed on from its input."""

    def __init__(self, block: nn.Module, transformation: nn.Module):
        super().__init__()
        self.block, self.transformation = block, transformation

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        y = self.block(x)
        return [self.transformation(y[0])] + list(y[1:])
