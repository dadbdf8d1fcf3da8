"""What NNI leaves in a module copied out of the supernet, removed: exported subnets that pickle and script.

A module of the space keeps what NNI put there while the space was built, and a copy of it
(:func:`~.subnet.subnet_of`) keeps it too:

- attributes that hold NNI choices or expressions of them (``MobileNetV3Space.widths``,
  ``InvertedResidual.out_channels``, the NDS stages' estimated widths, the NDS depth ``num_cells``): their
  expressions hold lambdas, so ``torch.save`` of the module fails, and TorchScript cannot type them;
- the bookkeeping of NNI's mutable modules: ``_mutables`` (the choices a module registered), ``trace_args`` and
  ``trace_kwargs`` (the constructor's arguments, choices included), ``_frozen_context`` and ``_label_scope``
  (the dry run that built the space);
- NNI classes: ``Mutable<X>`` layers (``MutableConv2d``...), which are the torch layer plus that bookkeeping;
  class annotations naming NNI types (``widths: List[Union[int, MutableExpression[int]]]``), which TorchScript
  reads for the attribute of that name; NNI's ProxylessNAS blocks, whose ``forward`` calls
  ``super().forward``, which TorchScript cannot compile; and other NNI hub modules whose ``forward`` it cannot
  compile (the NDS spaces' net, stages and cell pre- and postprocessors, AutoFormer's attention and encoder
  layer, NAS-Bench-201's pooling), and the int value of NNI's constant paddings, where TorchScript wants a float.

:func:`plain` resolves every choice and expression to its value in the architecture, drops the bookkeeping, turns
``Mutable<X>`` into the torch ``X``, the two ProxylessNAS blocks into :class:`ResidualSequential` (same
children, same state dict keys, a forward TorchScript compiles) and those other hub modules into their subclass of
:mod:`._scriptable` (NNI's forward written again for TorchScript), gives a module whose class annotations name
NNI types its own annotations without them, and a constant padding its value as a float. Parameters, buffers and
children are left as they are: the module computes exactly what it computed before.
"""

from __future__ import annotations

import functools
import typing
from typing import Any, Mapping

import torch
from torch import nn
from nni.mutable import Mutable
from nni.nas.nn.pytorch import ParametrizedModule

from .._nni_internals import NNI_BOOKKEEPING, PROXYLESSNAS_RESIDUAL_BLOCKS, bound_type
from ._scriptable import scriptable_class

__all__ = ['plain', 'ResidualSequential', 'NNI_BOOKKEEPING']


class ResidualSequential(nn.Sequential):
    """Its children in order, plus the input when ``has_skip`` (NNI's ``InvertedResidual`` and
    ``DepthwiseSeparableConv`` of ``nni.nas.hub.pytorch.proxylessnas``, in a form TorchScript compiles).

    Args:
        modules: the children, run in order.
        has_skip: whether the input is added to their output (shapes must agree).
    """

    def __init__(self, *modules: nn.Module, has_skip: bool):
        super().__init__(*modules)
        self.has_skip = has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for module in self:
            y = module(y)
        return x + y if self.has_skip else y


def plain(module: nn.Module, sample: Mapping[str, Any]) -> nn.Module:
    """``module`` itself (not its children) without what NNI left in it; changed in place, and returned.

    Args:
        module: a module copied out of the supernet (its attributes are not shared with the supernet's module).
        sample: the architecture the choices and expressions in its attributes are resolved at; a label the
            architecture does not use (and so does not give) takes its default value, as in NNI's dry run.
    """
    attributes = vars(module)
    for name in NNI_BOOKKEEPING:
        attributes.pop(name, None)
    for name, value in list(attributes.items()):
        if name not in ('_parameters', '_buffers', '_modules') and _holds_choice(value):
            attributes[name] = _resolved(value, sample)
    _set_plain_class(module)
    _drop_nni_annotations(module)
    _float_pad_value(module)
    return module


def _holds_choice(value: Any) -> bool:
    """Whether ``value`` is, or is a list, tuple or dict holding, an NNI choice or expression (not a module)."""
    if isinstance(value, Mutable):
        return not isinstance(value, nn.Module)
    if isinstance(value, (list, tuple)):
        return any(_holds_choice(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_choice(item) for item in value.values())
    return False


def _resolved(value: Any, sample: Mapping[str, Any]) -> Any:
    """``value`` with every choice and expression in it at its value in ``sample`` (a new list, tuple or dict)."""
    if isinstance(value, Mutable) and not isinstance(value, nn.Module):
        defaults = {label: leaf.default() for label, leaf in value.simplify().items() if label not in sample}
        return value.freeze({**defaults, **sample})
    if isinstance(value, list):
        return [_resolved(item, sample) for item in value]
    if isinstance(value, tuple):
        items = [_resolved(item, sample) for item in value]
        return type(value)(*items) if hasattr(value, '_fields') else tuple(items)  # namedtuples keep their class
    if isinstance(value, dict):
        return {key: _resolved(item, sample) for key, item in value.items()}
    return value


def _set_plain_class(module: nn.Module) -> None:
    """``Mutable<X>`` becomes the torch ``X`` it wraps; NNI's ProxylessNAS blocks become
    :class:`ResidualSequential`; NNI hub modules whose forward TorchScript cannot compile become their subclass
    of :mod:`._scriptable`. All keep the instance's state (its bookkeeping already dropped)."""
    cls = type(module)
    bound = bound_type(cls)
    if isinstance(module, ParametrizedModule) and isinstance(bound, type) and isinstance(module, bound) \
            and cls.forward is bound.forward:  # a subclass with a forward of its own keeps it
        module.__class__ = bound
    elif (cls.__module__, cls.__qualname__) in PROXYLESSNAS_RESIDUAL_BLOCKS:  # forward: x + super().forward(x)
        module.__class__ = ResidualSequential
    elif (scriptable := scriptable_class(module)) is not None:
        module.__class__ = scriptable


def _float_pad_value(module: nn.Module) -> None:
    """A torch constant padding built with an int value (NNI's NDS and NAS-Bench-201 ``FactorizedReduce`` pad with
    ``0``) gets the equal float, the type TorchScript declares for it (an int fails to compile)."""
    if isinstance(module, (nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)) and type(module.value) is int:
        module.value = float(module.value)


def _drop_nni_annotations(module: nn.Module) -> None:
    """Give ``module`` its class's annotations less those naming NNI types, if there are any (see
    :func:`_annotations_without_nni`)."""
    kept = _annotations_without_nni(type(module))
    if kept is not None:
        vars(module)['__annotations__'] = dict(kept)


@functools.lru_cache(maxsize=None)
def _annotations_without_nni(cls: type) -> dict[str, Any] | None:
    """The annotations TorchScript reads for an instance of ``cls`` less those naming NNI types; ``None`` when none
    does.

    TorchScript types an attribute by the class's annotation of that name when there is one (the annotations of
    the nearest class in the MRO that has any); one naming an NNI type fails even when the value is a plain int.
    Without it, TorchScript infers the type from the (resolved) value. Left with none, an instance gets
    ``training: bool`` (as ``nn.Module`` declares it): an empty dict would send TorchScript back to the class's.
    """
    owner = next((c for c in cls.__mro__ if vars(c).get('__annotations__')), None)
    if owner is None:
        return None
    annotations = vars(owner)['__annotations__']
    resolved = _resolved_annotations(owner, annotations)
    kept = {name: annotation for name, annotation in annotations.items() if not _names_nni(resolved[name])}
    return None if len(kept) == len(annotations) else kept or {'training': bool}


def _resolved_annotations(owner: type, annotations: dict[str, Any]) -> dict[str, Any]:
    """``owner``'s ``annotations`` with those written as strings (``from __future__ import annotations``) evaluated
    where ``owner`` was defined; one that cannot be evaluated stays a string."""
    if not any(isinstance(annotation, str) for annotation in annotations.values()):
        return annotations
    try:
        hints = typing.get_type_hints(owner)
    except Exception:  # an annotation naming what its module does not define (NameError), or not a type
        hints = {}
    return {name: hints.get(name, annotation) for name, annotation in annotations.items()}


def _names_nni(annotation: Any) -> bool:
    """Whether a type annotation names a class of NNI (``Union[int, MutableExpression[int]]``...)."""
    if isinstance(annotation, type):
        return annotation.__module__.split('.')[0] == 'nni'
    origin = typing.get_origin(annotation)
    return (origin is not None and _names_nni(origin)) or any(_names_nni(a) for a in typing.get_args(annotation))
