"""``model_wrapper``: NNI 2.x's class decorator for a search space, making the class an NNI 3.0 ``ModelSpace``.

``@model_wrapper class Net(nn.Module)`` returns a new class ``Net`` deriving from the user's class and from NNI
3.0's ``nni.nas.nn.pytorch.ModelSpace`` (in that order, so the user's methods win and ``super().__init__()``
reaches ``ModelSpace``). Its ``__init__`` is the user's, run inside NNI 3.0's model-space wrapper (which records
the init arguments and the dry-run context) and inside a :class:`~._labels.WrapperLabelScope` (2.x's labels).
``basic_unit`` is a marker that changes nothing (one-shot search runs modules as they are); ``serialize`` and
``serialize_cls`` raise an error naming their NNI 3.0 replacement.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from torch import nn
from nni.nas.nn.pytorch import ModelSpace

from .._nni_internals import (BASIC_UNIT_MARK, LABEL_SCOPE, MODEL_WRAPPER_MARK, NO_INIT_WRAPPER,
                              init_model_space_subclass, model_space_init_wrapper, set_wrapped_init)
from ._errors import RetiariiMigrationError, removed
from ._labels import scope_for_new_space
from .nn.pytorch.choice import ValueChoice, tracking_value_choices

__all__ = ['model_wrapper', 'is_model_wrapped', 'serialize', 'serialize_cls', 'basic_unit']

T = TypeVar('T', bound=type)


def model_wrapper(cls: T) -> T:
    """Make ``cls`` (an ``nn.Module`` subclass) an NNI 3.0 ``ModelSpace``, with NNI 2.x's labels.

    Explicit labels stay as written; unlabeled choices are numbered ``model_1``, ``model_2``, ... in the order
    they are created, anew for every instance (so two runs of a script export the same labels).

    Raises:
        TypeError: ``cls`` is not a subclass of ``torch.nn.Module``.

    Example::

        import nni_proxyless.retiarii.nn.pytorch as nn
        from nni_proxyless.retiarii import model_wrapper

        @model_wrapper
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.LayerChoice([nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(1, 8, 5, padding=2)])
            ...
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f'@model_wrapper decorates a subclass of torch.nn.Module, got {cls!r}.')
    if issubclass(cls, ModelSpace):  # already an NNI 3.0 space (perhaps wrapped before): nothing to add
        return cls
    namespace = {'__module__': cls.__module__, '__qualname__': cls.__qualname__, '__doc__': cls.__doc__,
                 '__wrapped__': cls, MODEL_WRAPPER_MARK: True, '__init_subclass__': classmethod(_init_subclass)}
    space = type(cls.__name__, (cls, ModelSpace), namespace, **NO_INIT_WRAPPER)
    _wrap_init(space)
    return space  # type: ignore[return-value]


def is_model_wrapped(cls_or_instance: Any) -> bool:
    """Whether a class (or an instance's class) was decorated with :func:`model_wrapper`."""
    cls = cls_or_instance if isinstance(cls_or_instance, type) else type(cls_or_instance)
    return bool(getattr(cls, MODEL_WRAPPER_MARK, False))


def _init_subclass(cls: type, **kwargs: Any) -> None:
    """Subclasses of a wrapped space keep 2.x's labels (NNI 3.0 would make their labels strict again)."""
    init_model_space_subclass(cls, **kwargs)
    if '__init__' in cls.__dict__:
        _wrap_init(cls)


def _wrap_init(space: type) -> None:
    user_init: Callable[..., None] = space.__init__  # type: ignore[misc]
    labelled_init = model_space_init_wrapper(user_init)

    @functools.wraps(user_init)
    def __init__(self: ModelSpace, *args: Any, **kwargs: Any) -> None:
        if not hasattr(self, LABEL_SCOPE):  # the outermost __init__ of this instance
            setattr(self, LABEL_SCOPE, scope_for_new_space())
        with tracking_value_choices() as value_choices:
            try:
                labelled_init(self, *args, **kwargs)
            except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
                if value_choices:
                    raise _value_choice_error(type(self), value_choices, f'failed with: {exc}') from exc
                raise
        _check_value_choices(self, value_choices)

    set_wrapped_init(space, user_init)  # NNI 3.0 reads the init signature from here to record the arguments
    space.__init__ = __init__  # type: ignore[misc]


def _check_value_choices(space: ModelSpace, created: list[ValueChoice]) -> None:
    if not created:
        return
    searched = set(space.simplify())
    lost = [choice for choice in created if choice.label not in searched]
    if lost:
        raise _value_choice_error(type(space), lost, 'left them out of the search space')


def _value_choice_error(space: type, choices: list[ValueChoice], what: str) -> RetiariiMigrationError:
    names = ', '.join(f'{c.label!r} {c.values}' for c in choices)
    return RetiariiMigrationError(
        f'Building {space.__name__} with ValueChoice {names} {what}. On NNI 3.0 a ValueChoice is searchable only '
        'as the depth of a Repeat: a value inside a module\'s arguments (e.g. nn.Conv2d(3, nn.ValueChoice([16, 32]), '
        '3)) needs NNI 3.0\'s nni.nas.nn.pytorch.MutableConv2d & co., and the Proxyless strategy does not search '
        'such values. Write a LayerChoice over the candidate modules instead, e.g. nn.LayerChoice([nn.Conv2d(3, 16, '
        '3), nn.Conv2d(3, 32, 3)]) (see docs/migrating.md).')


serialize = removed('nni.retiarii.serialize', 'nni.trace(cls)(*args, **kwargs)')
serialize_cls = removed('nni.retiarii.serialize_cls', 'nni.trace(cls)')


def basic_unit(cls: T, basic_unit_tag: bool = True) -> T:
    """NNI 2.x's ``@basic_unit``: marks ``cls`` as a primitive module and returns it unchanged.

    It told 2.x's graph engine not to parse inside the module. One-shot strategies such as ``Proxyless`` run the
    module as it is, so the decorator has nothing to do; it is kept so that 2.x code runs unchanged (NNI 3.0's
    legacy ``basic_unit`` also traces the init arguments, which one-shot search does not use).

    Raises:
        TypeError: ``cls`` is not a subclass of ``torch.nn.Module``.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f'@basic_unit decorates a subclass of torch.nn.Module, got {cls!r}.')
    setattr(cls, BASIC_UNIT_MARK, basic_unit_tag)
    return cls
