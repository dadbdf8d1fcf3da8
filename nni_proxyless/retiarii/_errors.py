"""The error raised for NNI 2.x Retiarii features that NNI 3.0 removed, each naming its replacement."""

from __future__ import annotations

from typing import Any, Callable, NoReturn

__all__ = ['RetiariiMigrationError', 'removed', 'removed_names']


class RetiariiMigrationError(NotImplementedError):
    """A NNI 2.x Retiarii feature that has no equivalent on NNI 3.0; the message names what to use instead.

    See ``docs/migrating.md``.
    """


def _fail(name: str, replacement: str) -> NoReturn:
    raise RetiariiMigrationError(f'{name} is not supported in NNI 3.0 (nni.retiarii was removed). '
                                 f'Use instead: {replacement} (see docs/migrating.md).')


def removed(name: str, replacement: str) -> Callable[..., NoReturn]:
    """A stand-in for the 2.x callable ``name`` that raises :class:`RetiariiMigrationError` when called.

    Example::

        fixed_arch = removed('nni.retiarii.fixed_arch', 'model_space.freeze(arch)')
    """
    def stand_in(*args: Any, **kwargs: Any) -> NoReturn:
        _fail(name, replacement)

    stand_in.__name__ = stand_in.__qualname__ = name.rsplit('.', 1)[-1]
    stand_in.__doc__ = f'Removed in NNI 3.0: raises RetiariiMigrationError. Use {replacement}.'
    return stand_in


def removed_names(module: str, replacements: dict[str, str]) -> Callable[[str], NoReturn]:
    """A module ``__getattr__`` that raises for the 2.x names in ``replacements`` (AttributeError for others)."""
    def module_getattr(name: str) -> NoReturn:
        if name in replacements:
            _fail(f'{module}.{name}', replacements[name])
        raise AttributeError(f'module {module!r} has no attribute {name!r}')

    return module_getattr
