"""What every mixed op shares: the routing it reads, the labels it reads, where it sits among other choices."""

from __future__ import annotations

from typing import Any, Iterator

from torch import nn
from nni.mutable import Mutable

from .._nni_internals import BaseSuperNetModule, keep_mutables
from ..arch import ArchParameters
from ..labels import Choice, Condition
from ..routing import Routing, Selection

__all__ = ['MixedOp', 'SpaceError', 'record_occurrences', 'register_choice']


class SpaceError(ValueError):
    """The model space itself is at fault: widths that do not line up, a choice's value whose network cannot run,
    candidates whose outputs cannot be compared. The message names the layers, the labels and the fix."""


class MixedOp(BaseSuperNetModule):
    """Base of the mixed ops that replace NNI's choices in the supernet.

    Before every forward, the search sets the :class:`~nni_proxyless.routing.Routing` that all mixed ops share;
    an op runs what its labels' selections say. The op keeps NNI's original mutables, so the supernet still
    describes its search space (``simplify()``) and ``freeze(sample)`` returns the chosen subnet with the
    supernet's weights (copied).

    Args:
        routing: the supernet's routing.
        mutables: NNI's mutables this op stands for.
    """

    def __init__(self, routing: Routing, mutables: list[Mutable]):
        super().__init__()
        self._routing = routing
        # NNI's add_mutable also dry-runs each mutable in the frozen context; these were dry-run when the space
        # was built, and are kept only to describe the space (simplify, check_contains)
        keep_mutables(self, mutables)

    @property
    def routing(self) -> Routing:
        """The routing this op reads (shared by every mixed op of the supernet)."""
        return self._routing

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels this op reads."""
        raise NotImplementedError

    def selection(self, label: str) -> Selection:
        """The selection of ``label`` for the current forward."""
        return self._routing[label]

    def routed(self) -> str:
        """What this op runs now, as text (part of a latency measurement's cache key)."""
        return ','.join(f'{label}={self.selection(label).active}' for label in self.labels)

    def selected_children(self) -> Iterator[tuple[nn.Module, Condition]]:
        """The op's children, each with the condition on this op's labels under which it runs."""
        return iter(())

    def candidate_outputs(self, *args, **kwargs) -> Iterator[tuple[Any, Any]]:
        """Each candidate's output on these inputs, with the candidate's value (used by the shape check)."""
        return iter(())

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError('Selections are drawn by ArchParameters and set on the routing.')

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError('Architectures are exported by the Proxyless strategy (list_models).')


class SingleChoiceOp(MixedOp):
    """A mixed op for one label (``LayerChoice``, ``InputChoice``): its :class:`Choice` and selection."""

    def __init__(self, routing: Routing, choice: Choice, mutable: Mutable):
        super().__init__(routing, [mutable])
        self.choice = choice

    @property
    def label(self) -> str:
        """The NNI label this op chooses for."""
        return self.choice.label

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.choice.label,)

    def extra_repr(self) -> str:
        return f'label={self.label!r}, candidates={list(self.choice.values)!r}'


def register_choice(mutate_kwargs: dict[str, Any], choice: Choice) -> Routing:
    """Register ``choice`` with the strategy's :class:`ArchParameters`; returns the routing ops read."""
    arch: ArchParameters = mutate_kwargs['arch']
    arch.register(choice)
    return arch.routing


def record_occurrences(module: nn.Module, arch: ArchParameters, enclosing: tuple = ()) -> None:
    """Tell ``arch`` where every mixed op under ``module`` sits: which enclosing choices must select it."""
    if isinstance(module, MixedOp):
        for label in module.labels:
            arch.add_occurrence(label, enclosing)
        for child, condition in module.selected_children():
            record_occurrences(child, arch, enclosing + (condition,) if condition.labels else enclosing)
        return
    for child in module.children():
        record_occurrences(child, arch, enclosing)
