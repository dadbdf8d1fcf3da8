"""The mixed op that replaces NNI's ``LayerChoice``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from nni.mutable import SampleValidationError
from nni.nas.nn.pytorch import LayerChoice, MutableModule

from ..labels import Choice, Condition
from .base import SingleChoiceOp, register_choice
from .gate import gate
from .subnet import subnet_of

__all__ = ['MixedLayer']


class MixedLayer(SingleChoiceOp):
    """A ``LayerChoice`` that runs one candidate per step and gates it in architecture steps.

    Candidates may take any positional and keyword arguments; each must return one tensor, and in an
    architecture step the gated candidates must return tensors of equal shape.
    """

    def __init__(self, layer_choice: LayerChoice, choice: Choice, routing):
        super().__init__(routing, choice, layer_choice.choice)
        self.candidates = nn.ModuleList(list(layer_choice))

    def forward(self, *args, **kwargs) -> torch.Tensor:
        selection = self.selection(self.label)
        active = selection.active[0]
        output = self.candidates[active](*args, **kwargs)
        if not selection.is_gated:
            return output
        return gate(output, selection, active, lambda k: self.candidates[k](*args, **kwargs), self.label,
                    inputs=(args, kwargs), recomputes=True)

    def candidate_outputs(self, *args, **kwargs):
        return ((value, candidate(*args, **kwargs))
                for value, candidate in zip(self.choice.values, self.candidates))

    def selected_children(self):
        return ((candidate, Condition((self.label,), frozenset([(value,)])))
                for candidate, value in zip(self.candidates, self.choice.values))

    def _chosen(self, sample: dict[str, Any]) -> nn.Module:
        return self.candidates[self.choice.values.index(sample[self.label])]

    def check_contains(self, sample: dict[str, Any]) -> SampleValidationError | None:
        error = self.mutables[0].check_contains(sample)
        if error is not None:
            return error
        chosen = self._chosen(sample)
        for name, inner in MutableModule.named_mutable_descendants(chosen):  # type: ignore[arg-type]
            error = inner.check_contains(sample)
            if error is not None:
                error.paths.extend([name, str(sample[self.label])])
                return error
        return None

    def freeze(self, sample: dict[str, Any]) -> nn.Module:
        """A copy of the chosen candidate (nested choices frozen too), with the supernet's weights."""
        self.validate(sample)
        return subnet_of(self._chosen(sample), sample)

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict, mutate_kwargs: dict) -> 'MixedLayer | None':
        """Mutation hook: replace a ``LayerChoice``."""
        if not isinstance(module, LayerChoice):
            return None
        choice = Choice(module.label, 'layer', tuple(module.names))
        return cls(module, choice, register_choice(mutate_kwargs, choice))
