"""Argument checks shared by every constructor of the package, with one wording.

Every refusal reads ``<name> must be <what is allowed>, got <value>.`` Numbers are accepted as Python's numeric
tower defines them (``numbers.Integral``, ``numbers.Real``), so NumPy and other scalar types pass
(``np.int64(0)`` as a seed, ``np.float32(5.0)`` as a latency); ``bool`` is refused where a number is expected.
Checks return the value as a plain ``int`` or ``float``, so what is stored (checkpoints, JSON) is plain Python.

Example::

    warmup = _checks.integer('warmup_epochs', warmup_epochs, low=0)   # 'warmup_epochs must be an integer >= 0'
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable, NoReturn, Sequence

__all__ = ['fail', 'is_integer', 'is_number', 'integer', 'number', 'port', 'one_of', 'function', 'mapping',
           'shape']


def fail(name: str, allowed: str, value: Any, error: type[Exception] = ValueError) -> NoReturn:
    """Raise ``error('<name> must be <allowed>, got <value>.')``."""
    raise error(f'{name} must be {allowed}, got {value!r}.')


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer of any numeric type (``bool`` is not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number of any numeric type (``bool`` is not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None,
            optional: bool = False) -> int | None:
    """``value`` as an ``int`` within ``[low, high]`` (``None`` too when ``optional``).

    Raises:
        ValueError: ``<name> must be an integer >= <low>[ or None], got <value>.`` (or ``from <low> to <high>``).
    """
    if value is None and optional:
        return None
    if not is_integer(value) or (low is not None and value < low) or (high is not None and value > high):
        fail(name, _range('an integer', low, high) + (' or None' if optional else ''), value)
    return int(value)


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None, positive: bool = False,
           optional: bool = False, unit: str = '') -> float | None:
    """``value`` as a finite ``float`` within ``[low, high]``, above 0 when ``positive`` (``None`` if ``optional``).

    Args:
        unit: named in the message, e.g. ``'milliseconds'`` gives ``a positive number of milliseconds``.

    Raises:
        ValueError: ``<name> must be a positive number[ of <unit>][ or None], got <value>.`` (or a range).
    """
    if value is None and optional:
        return None
    in_range = is_number(value) and (not positive or value > 0) and (low is None or value >= low) \
        and (high is None or value <= high)
    if not in_range:
        kind = 'a positive number' if positive else 'a number' if low is not None or high is not None \
            else 'a finite number'
        allowed = _range(kind + (f' of {unit}' if unit else ''), low, high)
        fail(name, allowed + (' or None' if optional else ''), value)
    return float(value)


def port(name: str, value: Any) -> int:
    """A TCP port number, 1 to 65535."""
    return integer(name, value, low=1, high=65535)


def one_of(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` if it equals one of ``allowed`` (``True`` is not ``1``)."""
    if not any(_same(value, option) for option in allowed):
        fail(name, _alternatives(allowed), value)
    return value


def function(name: str, value: Any, call: str, error: type[Exception] = TypeError) -> Callable:
    """A callable, described by how it is called (``call``, e.g. ``'metrics(logits, target)'``).

    Raises:
        TypeError: (or ``error``) ``<name> must be callable as <call>, got <value>.``
    """
    if not callable(value):
        fail(name, f'callable as {call}', value, error)
    return value


def mapping(name: str, value: Any, *, keys: Iterable[str] | None = None, optional: bool = False) -> dict | None:
    """A dict (with keys among ``keys`` when given; ``None`` too when ``optional``)."""
    if value is None and optional:
        return None
    allowed = None if keys is None else sorted(keys)
    if not isinstance(value, dict) or (allowed is not None and set(value) - set(allowed)):
        fail(name, 'a dict' + (f' with keys among {allowed}' if allowed is not None else '')
             + (' or None' if optional else ''), value)
    return value


def shape(name: str, value: Any) -> tuple[int, ...]:
    """An input shape: a non-empty tuple or list of positive integers."""
    if not isinstance(value, (tuple, list)) or not value or not all(is_integer(d) and d > 0 for d in value):
        fail(name, 'an input shape of positive integers such as (1, 3, 224, 224), or a tensor', value)
    return tuple(int(d) for d in value)


def _same(value: Any, option: Any) -> bool:
    return value is option or (type(value) is not bool and isinstance(value, type(option)) and value == option)


def _range(kind: str, low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f'{kind} from {low} to {high}'
    if low is not None:
        return f'{kind} >= {low}'
    if high is not None:
        return f'{kind} <= {high}'
    return kind


def _alternatives(allowed: Sequence[Any]) -> str:
    shown = [repr(option) for option in allowed]
    return shown[0] if len(shown) == 1 else f'{", ".join(shown[:-1])} or {shown[-1]}'
