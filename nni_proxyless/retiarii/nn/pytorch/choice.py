"""NNI 2.x's ``LayerChoice``, ``InputChoice`` and ``ValueChoice`` signatures on NNI 3.0's classes.

NNI 2.x called the prior distribution ``prior`` (3.0: ``weights``) and still accepted the old ``key`` for
``label``. These subclasses translate the arguments and are otherwise NNI 3.0's classes, so the ``Proxyless``
strategy (and every other NNI 3.0 strategy) sees ordinary ``LayerChoice`` / ``InputChoice`` / ``Categorical``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from nni.mutable import Categorical
from nni.mutable.frozen import frozen_context
from nni.nas.nn.pytorch import InputChoice as _InputChoice
from nni.nas.nn.pytorch import LayerChoice as _LayerChoice
from nni.nas.space import current_model

__all__ = ['LayerChoice', 'InputChoice', 'ValueChoice', 'tracking_value_choices']

_TRACKERS: list[list['ValueChoice']] = []


def _label(label: str | None, kwargs: dict[str, Any], what: str) -> str | None:
    key = kwargs.pop('key', None)
    if kwargs:
        raise TypeError(f'{what}() got unexpected keyword arguments {sorted(kwargs)}')
    return label if label is not None else key


class LayerChoice(_LayerChoice):
    """Choose one of ``candidates`` (a list, or a dict by name). NNI 2.x's signature on NNI 3.0's ``LayerChoice``.

    Args:
        candidates: the candidate modules.
        prior: prior probabilities (NNI 3.0: ``weights``); ``Proxyless`` starts from uniform logits anyway.
        label: the label in exported architectures (2.x's ``key`` is accepted too); unlabeled choices inside
            a ``@model_wrapper`` space are numbered ``model_1``, ``model_2``, ...
    """

    @classmethod
    def create_fixed_module(cls, sample: dict, candidates: Any, *, prior: list[float] | None = None,
                            label: str | None = None, **kwargs: Any) -> Any:
        return super().create_fixed_module(sample, candidates, weights=prior,
                                           label=_label(label, kwargs, 'LayerChoice'))

    def __init__(self, candidates: Any, *, prior: list[float] | None = None, label: str | None = None,
                 **kwargs: Any) -> None:
        label = _label(label, kwargs, 'LayerChoice')
        with _outside_a_space(label, candidates):
            super().__init__(candidates, weights=prior, label=label)


class InputChoice(_InputChoice):
    """Choose ``n_chosen`` of ``n_candidates`` inputs and reduce them. NNI 2.x's signature on NNI 3.0's class.

    Args:
        n_candidates: how many inputs the forward receives.
        n_chosen: how many are chosen (default 1).
        reduction: ``'sum'`` (default), ``'mean'``, ``'concat'`` or ``'none'``.
        prior: prior probabilities (NNI 3.0: ``weights``).
        label: the label in exported architectures (2.x's ``key`` is accepted too).
    """

    @classmethod
    def create_fixed_module(cls, sample: dict, n_candidates: int, n_chosen: int | None = 1,
                            reduction: str = 'sum', *, prior: list[float] | None = None,
                            label: str | None = None, **kwargs: Any) -> Any:
        return super().create_fixed_module(sample, n_candidates, n_chosen, reduction, weights=prior,
                                           label=_label(label, kwargs, 'InputChoice'))

    def __init__(self, n_candidates: int, n_chosen: int | None = 1, reduction: str = 'sum', *,
                 prior: list[float] | None = None, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(n_candidates, n_chosen, reduction, weights=prior,  # type: ignore[arg-type]
                         label=_label(label, kwargs, 'InputChoice'))


class ValueChoice(Categorical):
    """Choose one of ``candidates``: NNI 2.x's ``ValueChoice`` as NNI 3.0's ``Categorical`` (``nni.choice``).

    With ``Proxyless`` it is searchable as the depth of a ``Repeat`` (``nn.Repeat(block, nn.ValueChoice([1, 2,
    3]))``). A value inside a module's arguments (``nn.Conv2d(3, nn.ValueChoice([16, 32]), 3)``) is not: NNI 3.0
    needs its ``Mutable*`` modules for that and ``Proxyless`` searches only layer, input and depth choices, so a
    ``@model_wrapper`` space that uses one fails when it is built, naming the label (use a ``LayerChoice`` over
    the candidate modules instead). Inside ``nni.nas.space.model_context(arch)`` it is the chosen value itself,
    as NNI 2.x's ``fixed_arch`` made it.

    Args:
        candidates: the values.
        prior: prior probabilities (NNI 3.0: ``weights``).
        label: the label in exported architectures.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        arch = current_model()
        if arch is not None and args:  # building a fixed architecture: the value itself
            return Categorical(args[0], weights=kwargs.get('prior'), label=kwargs.get('label')).freeze(arch)
        return super().__new__(cls)

    def __init__(self, candidates: Any, *, prior: list[float] | None = None, label: str | None = None) -> None:
        super().__init__(candidates, weights=prior, label=label)
        if _TRACKERS:
            _TRACKERS[-1].append(self)

    @property
    def candidates(self) -> list:
        """The values (NNI 2.x's name for ``values``)."""
        return self.values


@contextlib.contextmanager
def tracking_value_choices() -> Iterator[list[ValueChoice]]:
    """Collect the ``ValueChoice`` objects created inside the ``with`` block (``model_wrapper`` checks them)."""
    created: list[ValueChoice] = []
    _TRACKERS.append(created)
    try:
        yield created
    finally:
        _TRACKERS.pop()


def _outside_a_space(label: str | None, candidates: Any) -> Any:
    """Outside a model space's ``__init__`` (2.x one-shot trainers took plain modules), NNI 3.0 refuses to pick the
    candidate its choices run before a strategy replaces them; 2.x ran the first one: so does this context."""
    if label is None or frozen_context.current() is not None or not candidates:
        return contextlib.nullcontext()
    first = next(iter(candidates)) if isinstance(candidates, dict) else 0
    return frozen_context({label: first})
