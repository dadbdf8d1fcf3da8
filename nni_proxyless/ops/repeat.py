"""The mixed op that replaces NNI's ``Repeat`` with a searched depth."""

from __future__ import annotations

import copy
from itertools import islice
from typing import Any

import torch
from torch import nn
from nni.mutable import Categorical, Mutable, SampleValidationError
from nni.nas.nn.pytorch import Repeat, recursive_freeze

from ..arch import Choice
from .base import MixedOp, register_choice
from .gate import gate

__all__ = ['MixedRepeat']


class MixedRepeat(MixedOp):
    """A ``Repeat`` whose depth is a categorical over the depths the user allowed.

    The blocks run in a chain, so the outputs at every depth up to the active one come from one pass; a
    deeper gated depth continues that pass inside backward, without a graph.
    """

    def __init__(self, repeat: Repeat, choice: Choice):
        super().__init__(choice, repeat.depth_choice)
        self.blocks = nn.ModuleList(list(repeat.blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = self.path
        active = path.active[0]
        depth = self.choice.values[active]
        outputs = [x]
        for block in islice(self.blocks, depth):
            outputs.append(block(outputs[-1]))
        if path.logits is None:
            return outputs[-1]
        return gate(outputs[-1], path, active, lambda k: self._output_at(self.choice.values[k], outputs),
                    self.label)

    def candidate_outputs(self, x: torch.Tensor):
        outputs = [x]
        for block in islice(self.blocks, max(self.choice.values)):
            outputs.append(block(outputs[-1]))
        return ((depth, outputs[depth]) for depth in self.choice.values)

    def selected_children(self):
        values = self.choice.values
        return ((block, frozenset(d for d in values if d > i)) for i, block in enumerate(self.blocks))

    def _output_at(self, depth: int, outputs: list[torch.Tensor]) -> torch.Tensor:
        y = outputs[min(depth, len(outputs) - 1)]
        for block in self.blocks[len(outputs) - 1:depth]:
            y = block(y)
        return y

    def check_contains(self, sample: dict[str, Any]) -> SampleValidationError | None:
        error = self.mutables[0].check_contains(sample)
        if error is not None:
            return error
        for i, block in enumerate(self.blocks[:sample[self.label]]):
            error = Repeat._check_any_module_contains(block, sample, str(i))
            if error is not None:
                return error
        return None

    def freeze(self, sample: dict[str, Any]) -> nn.Module:
        """The first ``depth`` blocks (copies, nested choices frozen), as NNI's fixed ``Repeat`` does."""
        self.validate(sample)
        blocks = [copy.deepcopy(recursive_freeze(block, sample)[0]) for block in self.blocks[:sample[self.label]]]
        return nn.Sequential(*blocks)

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict, mutate_kwargs: dict) -> 'MixedRepeat | None':
        """Mutation hook: replace a ``Repeat`` whose depth is a choice (a fixed depth is left alone)."""
        if not isinstance(module, Repeat) or not isinstance(module.depth_choice, Mutable):
            return None
        if not isinstance(module.depth_choice, Categorical):
            raise ValueError(f'Repeat at {name!r}: depth {module.depth_choice!r} is an expression; Proxyless searches '
                             'a plain categorical depth, e.g. Repeat(block, (1, 4)) or nni.choice(label, [1, 2, 4]).')
        choice = Choice(module.depth_choice.label, 'depth', tuple(int(v) for v in module.depth_choice.values))
        register_choice(mutate_kwargs, choice)
        return cls(module, choice)
