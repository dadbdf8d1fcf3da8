"""What every mixed op shares: its label's :class:`~nni_proxyless.arch.Choice` and the path it runs."""

from __future__ import annotations

from typing import Any, Iterator

from torch import nn
from nni.mutable import Mutable
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule

from ..arch import ArchParameters, Choice, Path

__all__ = ['MixedOp', 'record_occurrences']


class MixedOp(BaseSuperNetModule):
    """Base of the mixed ops that replace NNI's choices in the supernet.

    The training loop sets :attr:`path` before every forward; the op runs only ``path.active``. The op keeps
    NNI's original mutable, so the supernet still describes its search space (``simplify()``) and
    ``freeze(sample)`` returns the chosen subnet with the supernet's weights (copied).
    """

    def __init__(self, choice: Choice, mutable: Mutable):
        super().__init__()
        self.choice = choice
        self.path = Path(active=tuple(range(choice.n_chosen)))
        self.add_mutable(mutable)

    @property
    def label(self) -> str:
        """The NNI label this op chooses for."""
        return self.choice.label

    def set_path(self, path: Path) -> None:
        """Select the candidates the next forward runs (and, in an architecture step, gates)."""
        self.path = path

    def extra_repr(self) -> str:
        return f'label={self.label!r}, candidates={list(self.choice.values)!r}'

    def selected_children(self) -> Iterator[tuple[nn.Module, frozenset]]:
        """The op's children, each with the values of this op's label that run it."""
        return iter(())

    def candidate_outputs(self, *args, **kwargs) -> Iterator[tuple[Any, Any]]:
        """Each candidate's output on these inputs, with the candidate's value (used by the shape check)."""
        return iter(())

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError('Paths are drawn by ArchParameters; call set_path().')

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError('Architectures are exported by the Proxyless strategy (list_models).')


def register_choice(mutate_kwargs: dict[str, Any], choice: Choice) -> None:
    """Register ``choice`` with the strategy's :class:`ArchParameters` passed to the mutation hooks."""
    arch: ArchParameters = mutate_kwargs['arch']
    arch.register(choice)


def record_occurrences(module: nn.Module, arch: ArchParameters, enclosing: tuple = ()) -> None:
    """Tell ``arch`` where every mixed op under ``module`` sits: which enclosing choices must select it."""
    if isinstance(module, MixedOp):
        arch.add_occurrence(module.label, enclosing)
        for child, values in module.selected_children():
            record_occurrences(child, arch, enclosing + ((module.label, values),))
        return
    for child in module.children():
        record_occurrences(child, arch, enclosing)
