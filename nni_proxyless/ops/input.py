"""The mixed op that replaces NNI's ``InputChoice``."""

from __future__ import annotations

from typing import Any, List

import torch
from torch import nn
from nni.mutable import SampleValidationError
from nni.nas.nn.pytorch import InputChoice

from .._nni_internals import tensor_reduction
from ..labels import Choice
from .base import SingleChoiceOp, register_choice
from .gate import gate

__all__ = ['MixedInput', 'ChosenList', 'ChosenReduced']


class MixedInput(SingleChoiceOp):
    """An ``InputChoice`` that takes ``n_chosen`` sampled inputs and reduces them as NNI does.

    With one input chosen it is searched like a layer choice whose candidates are the inputs. With several,
    each chosen input is gated on its own: the gate sits on the input before the reduction, so every
    reduction NNI allows (``sum``, ``mean``, ``concat``, ``none``) gets its exact gate gradient.
    """

    def __init__(self, input_choice: InputChoice, choice: Choice, routing):
        super().__init__(routing, choice, input_choice.choice)
        self.reduction = input_choice.reduction

    def forward(self, candidate_inputs: list[torch.Tensor]) -> Any:
        selection = self.selection(self.label)
        indices = sorted(selection.active)  # in index order, as NNI's fixed ChosenInputs takes them
        chosen = [candidate_inputs[k] for k in indices]
        if selection.is_gated:
            chosen = [self._gated(candidate_inputs, k, x) for k, x in zip(indices, chosen)]
        return tensor_reduction(self.reduction, chosen)

    def candidate_outputs(self, candidate_inputs: list[torch.Tensor]):
        if self.choice.n_chosen > 1:  # each input is gated on its own: no shape constraint
            return iter(())
        return ((k, x) for k, x in enumerate(candidate_inputs))

    def _gated(self, inputs: list[torch.Tensor], k: int, x: torch.Tensor) -> torch.Tensor:
        selection = self.selection(self.label)
        if self.choice.n_chosen > 1:  # each chosen input has its own gate
            selection = selection.gated_only((k,))
        return gate(x, selection, k, lambda j: inputs[j], self.label, inputs=[inputs[j] for j in selection.gated])

    def check_contains(self, sample: dict[str, Any]) -> SampleValidationError | None:
        return self.mutables[0].check_contains(sample)

    def freeze(self, sample: dict[str, Any]) -> nn.Module:
        """The sampled inputs, reduced as NNI's fixed ``ChosenInputs`` does (:class:`ChosenList` for
        ``reduction='none'``, else :class:`ChosenReduced`: classes TorchScript compiles, unlike NNI's)."""
        self.validate(sample)
        chosen = sample[self.label]
        chosen = list(chosen) if isinstance(chosen, (list, tuple)) else [chosen]
        return ChosenList(chosen) if self.reduction == 'none' else ChosenReduced(chosen, self.reduction)

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict, mutate_kwargs: dict) -> 'MixedInput | None':
        """Mutation hook: replace an ``InputChoice``."""
        if not isinstance(module, InputChoice):
            return None
        if module.n_chosen is None:
            raise ValueError(f'InputChoice {module.label!r} at {name!r} has n_chosen=None (any number of inputs); '
                             'Proxyless searches a fixed number of inputs: set n_chosen to an integer.')
        choice = Choice(module.label, 'input', tuple(range(module.n_candidates)), module.n_chosen)
        return cls(module, choice, register_choice(mutate_kwargs, choice))


class ChosenList(nn.Module):
    """The chosen inputs, in the order of ``chosen`` (NNI's ``ChosenInputs`` with ``reduction='none'``).

    Args:
        chosen: the indices of the chosen inputs.
    """

    def __init__(self, chosen: list[int]):
        super().__init__()
        self.chosen = list(chosen)

    def forward(self, candidate_inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        return [candidate_inputs[i] for i in self.chosen]


class ChosenReduced(nn.Module):
    """The chosen inputs summed, averaged or concatenated along dimension 1 (NNI's ``ChosenInputs`` with
    ``reduction`` ``'sum'``, ``'mean'`` or ``'concat'``; one chosen input is returned as it is).

    Args:
        chosen: the indices of the chosen inputs (at least one).
        reduction: ``'sum'``, ``'mean'`` or ``'concat'``.

    Raises:
        ValueError: ``reduction`` is none of these, or nothing is chosen.
    """

    def __init__(self, chosen: list[int], reduction: str):
        super().__init__()
        if reduction not in ('sum', 'mean', 'concat'):
            raise ValueError(f"reduction must be 'sum', 'mean' or 'concat' (or 'none': ChosenList), got "
                             f'{reduction!r}.')
        if not chosen:
            raise ValueError('ChosenReduced needs at least one chosen input, got none.')
        self.chosen, self.reduction = list(chosen), reduction

    def forward(self, candidate_inputs: List[torch.Tensor]) -> torch.Tensor:
        inputs = [candidate_inputs[i] for i in self.chosen]
        if len(inputs) == 1:
            return inputs[0]
        if self.reduction == 'concat':
            return torch.cat(inputs, dim=1)
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total / len(inputs) if self.reduction == 'mean' else total
