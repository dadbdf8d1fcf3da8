"""Record the ops one module call runs, in nn-Meter's op vocabulary: the graph that nn-Meter's kernel detector fuses.

One forward of the call (eval mode, no grad) under a ``TorchFunctionMode`` sees every torch function, whether a
module (``nn.Conv2d`` calls ``F.conv2d``) or plain code (``x + y``, ``torch.cat``, ``x.mean((2, 3))``) calls it;
forward hooks on every submodule only tell where it happened. Each function is, by name:

- an op of nn-Meter's vocabulary (:data:`KERNEL_OPS`: conv, dwconv, bn, relu, hswish, fc, maxpool, avgpool, gap,
  add, concat, split, channelshuffle), or one nn-Meter knows but never prices (:data:`UNPRICED_OPS`: mul, div,
  sub, sigmoid, hardsigmoid, softmax, transpose, pad): recorded as an :class:`Op` with its data inputs, shapes
  and hyper-parameters, as nn-Meter's converters name them (ONNX ``Clip`` and TF ``Relu6`` are ``relu``, a conv
  whose groups equal its input channels is ``dwconv``, ``ReduceMean`` is ``gap``);
- free (views, reshapes, dropout, dtype casts, metadata): outputs stand for their input, as nn-Meter drops them;
- anything else that reads the network's data (an LSTM, ``F.interpolate``, ``matmul``, ...): unsupported.

Data flow is tracked by tensor identity: the call's inputs (and tensors of unknown origin) are sources, the
module's parameters and buffers and whatever is computed from them alone are constants (folded away, as nn-Meter's
converters fold them), and every recorded op's outputs are produced by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode, resolve_name

__all__ = ['Op', 'UnsupportedOpError', 'record_ops', 'KERNEL_OPS', 'UNPRICED_OPS']

Shape = tuple[int, ...]

KERNEL_OPS = ('conv', 'dwconv', 'bn', 'relu', 'hswish', 'fc', 'maxpool', 'avgpool', 'gap', 'add', 'concat', 'split',
              'channelshuffle')
UNPRICED_OPS = ('mul', 'div', 'sub', 'sigmoid', 'hardsigmoid', 'softmax', 'transpose', 'pad')


@dataclass(frozen=True)
class Op:
    """One op of a call, in nn-Meter's vocabulary.

    Attributes:
        type: nn-Meter's op type ('conv', 'dwconv', 'bn', 'relu', 'add', ...; an unsupported op's torch name).
        inputs: the ops producing its data inputs (indices into the call's op list; negative: a source tensor).
        in_shapes: shapes of the data inputs (NCHW); an ``add`` of a constant repeats its data input's shape.
        out_shape: shape of the (first) output.
        ks: kernel size along the width (convs and pools), else 0.
        stride: stride along the width (convs and pools), else 0.
        where: the innermost module running it: ``'path (Type)'`` relative to the call's module.
    """

    type: str
    inputs: tuple[int, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    ks: int = 0
    stride: int = 0
    where: str = ''


class UnsupportedOpError(ValueError):
    """A module call runs an op that nn-Meter has no kernel for (the message names the op, module type and path)."""


def record_ops(module: nn.Module, args: tuple, kwargs: dict, *, unsupported: str = 'error') -> list[Op]:
    """The ops of ``module(*args, **kwargs)`` in execution order, from one forward in eval mode without grad.

    Args:
        module: the module to run (its train/eval flags are restored afterwards).
        args, kwargs: its recorded inputs.
        unsupported: ``'error'`` raises on an op outside nn-Meter's vocabulary; ``'ignore'`` records it as an op
            of its torch name (that no predictor prices).

    Raises:
        UnsupportedOpError: an unsupported op reads the call's data (when ``unsupported='error'``).
    """
    recorder = _Recorder(module, unsupported)
    for tensor in _tensors((args, kwargs)):
        recorder.source(tensor)
    flags = {m: m.training for m in module.modules()}
    handles = _path_hooks(module, recorder.stack)
    threads = torch.get_num_threads()
    try:
        module.eval()
        torch.set_num_threads(1)  # only shapes matter; one thread avoids contention on small, busy machines
        with torch.no_grad(), recorder:
            module(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)
        for handle in handles:
            handle.remove()
        for m, flag in flags.items():
            m.training = flag
    return recorder.ops


class _Recorder(TorchFunctionMode):
    """Classifies every torch function of the forward and records the ops (see the module docstring)."""

    def __init__(self, module: nn.Module, unsupported: str) -> None:
        super().__init__()
        self.ops: list[Op] = []
        self.stack: list[tuple[str, str]] = [('', type(module).__name__)]
        self._unsupported = unsupported
        self._producer: dict[int, int] = {}
        self._sources = 0
        self._constant = {id(t) for t in [*module.parameters(), *module.buffers()]}
        self._keep: list[torch.Tensor] = []  # every tensor seen stays alive, so ids stay unique

    def source(self, tensor: torch.Tensor) -> int:
        """Register ``tensor`` as a source of data (an input of the call); its negative id."""
        if id(tensor) not in self._producer:
            self._sources += 1
            self._producer[id(tensor)] = -self._sources
            self._keep.append(tensor)
        return self._producer[id(tensor)]

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self._observe(func, args, kwargs, out)
        return out

    def _observe(self, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
        outputs = list(_tensors(out))
        if not outputs:
            return  # metadata (size, dim, shape) or a setter: nothing flows
        name = getattr(func, '__name__', '')
        data = [t for t in _tensors((args, kwargs)) if id(t) not in self._constant]
        self._keep.extend(outputs)
        if not data or name in _CONSTANT_LIKE:
            self._constant.update(id(t) for t in outputs)
            return
        producers = [self.source(t) if id(t) not in self._producer else self._producer[id(t)] for t in data]
        if name in _FREE:
            self._producer.update((id(t), producers[0]) for t in outputs)
            return
        kind = _classify(name, args, kwargs, data, outputs)
        if kind is None:
            kind = (self._refuse(func, name), 0, 0)
        shapes = tuple(tuple(t.shape) for t in data)
        if kind[0] == 'add' and len(data) == 1:
            shapes = shapes * 2  # nn-Meter's "add with const" repeats the input's shape
        if kind[0] == 'concat':
            shapes = tuple(tuple(t.shape) for t in _tensors(_arg(args, kwargs, 0, 'tensors')))
        self.ops.append(Op(kind[0], tuple(producers), shapes, tuple(outputs[0].shape), kind[1], kind[2],
                           self._where()))
        self._producer.update((id(t), len(self.ops) - 1) for t in outputs)

    def _where(self) -> str:
        path, kind = self.stack[-1]
        return f'{path or "<root>"} ({kind})'

    def _refuse(self, func: Callable, name: str) -> str:
        if self._unsupported == 'ignore':
            return name
        raise UnsupportedOpError(
            f'nn-Meter cannot price {_torch_name(func)}, called by the module {self._where()}: it is not one of '
            f'nn-Meter\'s kernels ({", ".join(KERNEL_OPS)}). Rewrite the module with supported ops, pass '
            "predictor_options={'unsupported': 'ignore'} to count it as 0 ms (logged), or use another "
            "applied_hardware ('cpu', 'flops').")


def _classify(name: str, args: tuple, kwargs: dict, data: list[torch.Tensor],
              outputs: list[torch.Tensor]) -> tuple[str, int, int] | None:
    """``(nn-Meter op type, ks, stride)`` of a function that reads data, or None if unsupported."""
    if name in _SIMPLE:
        return _SIMPLE[name], 0, 0
    handler = _HANDLERS.get(name)
    return handler(args, kwargs, data[0], outputs[0]) if handler is not None else None


def _conv(args: tuple, kwargs: dict, x: torch.Tensor, out: torch.Tensor) -> tuple[str, int, int] | None:
    weight, groups = _arg(args, kwargs, 1, 'weight'), _arg(args, kwargs, 6, 'groups', 1)
    if x.dim() != 4 or not isinstance(weight, torch.Tensor):
        return None
    # nn-Meter's converters: a conv whose group count equals its input channels is depthwise
    kind = 'dwconv' if groups == x.shape[1] else 'conv'
    return kind, int(weight.shape[-1]), _pair(_arg(args, kwargs, 3, 'stride', 1))[1]


def _pool(kind: str) -> Callable[..., tuple[str, int, int] | None]:
    def handler(args: tuple, kwargs: dict, x: torch.Tensor, out: torch.Tensor) -> tuple[str, int, int] | None:
        ks = _pair(_arg(args, kwargs, 1, 'kernel_size'))[1]
        stride = _arg(args, kwargs, 2, 'stride', None)
        return (kind, ks, _pair(stride)[1] if stride not in (None, (), []) else ks) if x.dim() == 4 else None
    return handler


def _adaptive_avg_pool(args: tuple, kwargs: dict, x: torch.Tensor, out: torch.Tensor) -> tuple[str, int, int] | None:
    if x.dim() != 4:
        return None
    if out.shape[2:] == (1, 1):
        return 'gap', 0, 0
    (h, w), (oh, ow) = x.shape[2:], out.shape[2:]
    if h % oh == 0 and w % ow == 0 and h // oh == w // ow:  # exported as a plain AveragePool
        return 'avgpool', w // ow, w // ow
    return None


def _mean(args: tuple, kwargs: dict, x: torch.Tensor, out: torch.Tensor) -> tuple[str, int, int] | None:
    dims = _arg(args, kwargs, 1, 'dim', None)
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    return ('gap', 0, 0) if x.dim() == 4 and {d % 4 for d in dims} == {2, 3} else None


def _transpose(args: tuple, kwargs: dict, x: torch.Tensor, out: torch.Tensor) -> tuple[str, int, int] | None:
    # ShuffleNet's channel shuffle: a view of (N, g, C/g, H, W) with dims 1 and 2 swapped
    st = x.stride()
    shuffles = (x.dim() == 5 and out.stride() == (st[0], st[2], st[1], st[3], st[4])
                and tuple(out.shape) == (x.shape[0], x.shape[2], x.shape[1], *x.shape[3:]))
    return ('channelshuffle' if shuffles else 'transpose'), 0, 0


_HANDLERS: dict[str, Callable[..., tuple[str, int, int] | None]] = {
    'conv2d': _conv, 'max_pool2d': _pool('maxpool'), 'max_pool2d_with_indices': _pool('maxpool'),
    'avg_pool2d': _pool('avgpool'), 'adaptive_avg_pool2d': _adaptive_avg_pool, 'mean': _mean,
    'transpose': _transpose, 'transpose_': _transpose, 'permute': _transpose, 'swapaxes': _transpose,
    'swapdims': _transpose,
}


def _names(kind: str, *names: str) -> dict[str, str]:
    return {name: kind for name in names}


_SIMPLE: dict[str, str] = {
    **_names('bn', 'batch_norm'), **_names('fc', 'linear'), **_names('hswish', 'hardswish', 'hardswish_'),
    **_names('relu', 'relu', 'relu_', 'relu6', 'hardtanh', 'hardtanh_', 'clamp', 'clamp_', 'clip', 'clip_',
                     'clamp_min', 'clamp_min_'),
    **_names('add', 'add', 'add_', '__add__', '__iadd__', '__radd__'),
    **_names('concat', 'cat', 'concat', 'concatenate'),
    **_names('split', 'split', 'split_with_sizes', 'chunk', 'tensor_split', 'unbind', 'narrow', '__getitem__'),
    **_names('mul', 'mul', 'mul_', '__mul__', '__imul__', '__rmul__', 'multiply'),
    **_names('div', 'div', 'div_', '__truediv__', '__itruediv__', '__rtruediv__', 'true_divide', 'divide'),
    **_names('sub', 'sub', 'sub_', '__sub__', '__isub__', '__rsub__', 'subtract', 'rsub'),
    **_names('sigmoid', 'sigmoid', 'sigmoid_'), **_names('hardsigmoid', 'hardsigmoid', 'hardsigmoid_'),
    **_names('softmax', 'softmax', 'log_softmax'), **_names('pad', 'pad'),
}
# Free in nn-Meter (dropped by its converters or a no-op in eval): outputs stand for the input.
_FREE = frozenset({
    'view', 'view_as', 'reshape', 'reshape_as', 'flatten', 'unflatten', 'squeeze', 'squeeze_', 'unsqueeze',
    'unsqueeze_', 'contiguous', 'clone', 'detach', 'detach_', 'to', 'type', 'type_as', 'float', 'double', 'half',
    'bfloat16', 'cpu', 'cuda', 'expand', 'expand_as', '__get__', 'identity', 'requires_grad_', 'dropout',
    'dropout_', 'dropout1d', 'dropout2d', 'dropout3d', 'alpha_dropout', 'feature_alpha_dropout',
})
_CONSTANT_LIKE = frozenset({'zeros_like', 'ones_like', 'empty_like', 'full_like', 'rand_like', 'randn_like',
                            'randint_like', 'new_zeros', 'new_ones', 'new_empty', 'new_full', 'new_tensor'})


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if index < len(args) else default


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _torch_name(func: Callable) -> str:
    try:
        return resolve_name(func) or getattr(func, '__name__', repr(func))
    except Exception:  # resolve_name walks torch's namespaces; never let a message fail
        return getattr(func, '__name__', repr(func))


def _path_hooks(module: nn.Module, stack: list[tuple[str, str]]) -> list[Any]:
    """Forward hooks that keep ``stack`` at the (path, type) of the innermost running module."""
    handles = []
    for path, sub in module.named_modules():
        if sub is module:
            continue
        def push(m: nn.Module, args: Any, _path: str = path) -> None:
            stack.append((_path, type(m).__name__))

        def pop(m: nn.Module, args: Any, out: Any) -> None:
            stack.pop()
        handles.append(sub.register_forward_pre_hook(push))
        handles.append(sub.register_forward_hook(pop, always_call=True))
    return handles
