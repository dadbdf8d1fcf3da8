"""Mixed ops for layers whose arguments are choices: one max-size layer, each step runs the sampled slice.

NNI 3.0 spaces write ``MutableConv2d(c_in, nni.choice('w', [16, 32]), nni.choice('k', [3, 5]))`` (see
docs/design.md, "Value choices: slicing and widths"). A :class:`SlicedOp` keeps one layer built at the largest
values (Once-for-All's weight sharing) and runs, at every step, the slice its labels' routed values ask for:
channels and features as a prefix, the kernel as the centre crop, norm layers' prefix, the attention's prefix
projections, with autograd's own slicing: only the slice computes, and the max-size parameter's ``.grad`` is
full-size with zeros outside the slice.

An architecture step gates the labels over their gated values with the binary gate of :mod:`.gate`. Widths change
shapes, so in an architecture step the layers run with every *output* width at the widest gated value, and a
layer that *mixes* its input channels (a convolution's ``in_channels``, a linear layer's ``in_features``, a
layer norm, attention) takes the prefix of its input at each value ``v``: ``o_v`` is its output on that prefix
(FBNetV2's channel masks, placed where channels are consumed). Layers that act on each channel alone (batch norm,
depthwise convolutions, class tokens) run at the widest width and carry no gate of their own, so a consumer sees
the real features of the wider channels. Values that keep shapes (kernel size, dilation, ``Dropout.p``, attention
heads) are gated at the layer's output.

Inputs are never cut or padded to hide a width that does not line up: in a weight step a layer's input must have
exactly the width its arguments declare, and in an architecture step exactly the widest width its producer was
widened to (the same expression of the same labels, so the same largest value); anything else raises a
:class:`SpaceError`. The first-batch check of :mod:`.space_check` refuses spaces whose widths disagree before any
training, so these errors only guard against a bug.

Each kind of layer says which of its arguments are which (:attr:`SlicedOp.mixed_widths`,
:attr:`SlicedOp.channel_widths`, :attr:`SlicedOp.largest_arguments`) and how to run a slice (:meth:`run`) and
copy one out (:meth:`sliced_state`); see :mod:`.sliced_layers` and :mod:`.sliced_transformer`.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from nni.mutable import Mutable
from nni.nas.nn.pytorch import ParametrizedModule

from .._nni_internals import bound_type, wrapped_init
from ._expressions import Arguments, is_choice
from .base import MixedOp, SpaceError, register_choice
from .gate import gate

__all__ = ['SlicedOp', 'bound_arguments', 'pad_to', 'fit', 'sliced_parameter']


class SlicedOp(MixedOp):
    """A layer whose constructor arguments hold choices, searched by slicing one max-size layer.

    Subclasses set :attr:`bound_type` (the torch class NNI's ``Mutable<X>`` wraps) and the argument roles, and
    implement :meth:`run` and :meth:`sliced_state`.

    Args:
        arguments: the layer's constructor arguments (some of them choices or expressions of choices).
        routing: the supernet's routing.
        where: names the layer in messages (its class and place in the space).
        layer_type: the plain class the layer is built and frozen as (``nn.Conv2d`` for ``MutableConv2d``).
    """

    bound_type: ClassVar[type[nn.Module]]
    """The torch class (or base class) this rule slices."""
    largest_arguments: ClassVar[tuple[str, ...]] = ()
    """Arguments the max-size layer is built with at their largest value (widths, kernel sizes)."""
    fixed_arguments: ClassVar[tuple[str, ...]] = ()
    """Arguments that must not be choices (the slicing rule does not cover them)."""

    def __init__(self, arguments: dict[str, Any], routing, where: str, layer_type: type[nn.Module]):
        self.arguments = Arguments(arguments, where)
        super().__init__(routing, [value for value in arguments.values() if isinstance(value, Mutable)])
        self.where, self.layer_type = where, layer_type
        largest = {name: self.arguments.largest(name) if name in self.largest_arguments else
                   self.arguments.at_values(self.default_values())[name] for name in arguments}
        self.layer = layer_type(**self.max_layer_arguments(largest))
        mixed, channel = self.width_roles(self.arguments)
        self.mixed_widths, self.channel_widths = self._present(mixed), self._present(channel)
        gating = [name for name in self.arguments.values if name not in self.channel_widths]
        self._gated_labels = tuple(label for label in self.labels
                                   if any(label in self.arguments.labels_of(name) for name in gating))

    @property
    def labels(self) -> tuple[str, ...]:
        return self.arguments.labels

    def extra_repr(self) -> str:
        shown = ', '.join(f'{name}={value!r}' for name, value in self.arguments.values.items() if is_choice(value))
        return f'{self.layer_type.__name__}: {shown}'

    # ----------------------------------------------------------------------------------- subclass API

    @classmethod
    def width_roles(cls, arguments: Arguments) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The width arguments: those of an input the layer mixes (gated: the input's prefix at each value),
        and output widths or widths of channels the layer treats one by one (not gated)."""
        return (), ()

    def max_layer_arguments(self, largest: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments of the max-size layer (from every argument at its largest or first value)."""
        return largest

    def run(self, args: dict[str, Any], *inputs: Any, **kwargs: Any) -> Any:
        """The layer's output with arguments ``args`` (a slice of :attr:`layer`), on inputs of the width ``args``
        read."""
        raise NotImplementedError

    def sliced_state(self, args: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The state dict of ``bound_type(**args)`` cut out of :attr:`layer`."""
        raise NotImplementedError

    def output_width(self, args: dict[str, Any]) -> int | None:
        """The width the output must be zero-padded to in an architecture step (``None``: no padding)."""
        return None

    def widen_output(self, output: Any, width: int) -> Any:
        """``output`` zero-padded to ``width`` channels (along :attr:`output_dim`)."""
        return pad_to(output, width, self.output_dim)

    # ------------------------------------------------------------------------------------------ forward

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        routing = self._routing
        args = self.arguments.at(routing)
        if not any(routing[label].gated for label in self.labels):  # a weight step: the exact slice
            if self.input_width_argument is not None:
                self._check_input_width(inputs, kwargs, args[self.input_width_argument], widened=False)
            return self.run(args, *inputs, **kwargs)
        candidates = self._widening_candidates()
        if self.input_width_argument is not None:
            self._check_input_width(inputs, kwargs, self.arguments.largest(self.input_width_argument, candidates),
                                    widened=True)
        y = self._run_widened(args, candidates, inputs, kwargs)
        for label in self._gated_labels:
            selection = routing[label]
            if selection.is_gated:
                y = gate(y, selection, selection.active[0],
                         lambda k, label=label: self._run_widened(self._args_with(label, k), candidates, inputs,
                                                                  kwargs), label, inputs=(inputs, kwargs),
                         recomputes=True)
        return y

    def _widening_candidates(self) -> dict[str, list[Any]]:
        """The values each label is widened over in an architecture step: its gated ones, but for labels whose
        widening the first-batch check found to break the channel layout (see :mod:`.widths`)."""
        routing = self._routing
        return {label: routing.values(label, routing[label].active if label in routing.exact_widths
                                      else routing[label].gated or routing[label].active)
                for label in self.labels}

    def _run_widened(self, args: dict[str, Any], candidates: dict[str, list[Any]], inputs: tuple,
                     kwargs: dict[str, Any]) -> Any:
        """Run with every output and per-channel width at the largest value over ``candidates``; a layer that mixes
        its input takes the input's prefix at its own width (zeros past an exact-width input that is narrower)."""
        widened = dict(args)
        for name in self.channel_widths:
            widened[name] = self.arguments.largest(name, candidates)
        if self.input_width_argument is not None:
            inputs, kwargs = self._inputs_of_width(inputs, kwargs, widened[self.input_width_argument])
        output = self.run(widened, *inputs, **kwargs)
        width = self.output_width({**widened, **{n: self.arguments.largest(n, candidates)
                                                 for n in self.mixed_widths}})
        return output if width is None else self.widen_output(output, width)

    output_dim: ClassVar[int] = 1
    """The dimension of the output's channels (1 for convolutions and batch norm, -1 for features)."""
    input_width_argument: ClassVar[str | None] = None
    """The argument that is the width of the inputs (along :attr:`output_dim`), if any."""
    output_width_argument: ClassVar[str | None] = None
    """The argument that is the width of the output (along :attr:`output_dim`), if any."""
    width_inputs: ClassVar[tuple[str, ...]] = ('x',)
    """The inputs of :meth:`run` that carry :attr:`input_width_argument` channels, by name (positional ones in
    this order)."""

    def input_tensors(self, inputs: tuple, kwargs: dict[str, Any]) -> list[torch.Tensor]:
        """The tensors among ``inputs`` and ``kwargs`` that carry the input width (see :attr:`width_inputs`)."""
        found = list(inputs[:len(self.width_inputs)]) + [kwargs[name] for name in self.width_inputs if name in kwargs]
        return [x for x in found if isinstance(x, torch.Tensor)]

    def _check_input_width(self, inputs: tuple, kwargs: dict[str, Any], width: int, widened: bool) -> None:
        """Raise :class:`SpaceError` unless every width-carrying input has ``width`` channels (``widened``: the
        widest over the gated values, in an architecture step)."""
        for x in self.input_tensors(inputs, kwargs):
            if x.dim() == 0 or x.shape[self.output_dim] != width:
                at = 'at the widest of its gated values' if widened else self._values_text()
                raise SpaceError(
                    f'{self.where}: {self.input_width_argument}={width} {at}, but its input has shape '
                    f'{tuple(x.shape)} ({x.shape[self.output_dim] if x.dim() else "no"} along dimension '
                    f'{self.output_dim}). The width a layer reads must be the width the layer before it gives: '
                    'write both with the same label or expression.')

    def _inputs_of_width(self, inputs: tuple, kwargs: dict[str, Any], width: int) -> tuple[tuple, dict[str, Any]]:
        """The width-carrying inputs with ``width`` channels: their prefix, or zeros past them."""
        n = len(self.width_inputs)
        cut = tuple(fit(x, width, self.output_dim) if isinstance(x, torch.Tensor) else x for x in inputs[:n])
        return cut + tuple(inputs[n:]), {name: fit(x, width, self.output_dim) if name in self.width_inputs and
                                         isinstance(x, torch.Tensor) else x for name, x in kwargs.items()}

    def _values_text(self) -> str:
        """The labels' routed values, as text for messages (``"at w=16, k=3"``)."""
        if not self.labels:
            return '(a constant)'
        return 'at ' + ', '.join(f'{label}={self._routing.value(label)!r}' for label in self.labels)

    def layer_at(self, args: dict[str, Any]) -> nn.Module:
        """A plain ``layer_type`` built with ``args``, on the layer's device (fresh weights: :meth:`freeze` loads
        the slice into it)."""
        return self.layer_type(**args).to(next(self.layer.parameters(), torch.empty(0)).device)

    def inputs_at(self, args: dict[str, Any], inputs: tuple) -> tuple:
        """Recorded inputs with their width changed to what ``args`` take (zeros past a recorded one): inputs to
        price the layer at ``args`` alone (latency tables), never inputs of a search step."""
        if self.input_width_argument is None:
            return inputs
        return self._inputs_of_width(inputs, {}, args[self.input_width_argument])[0]

    def _args_with(self, label: str, k: int) -> dict[str, Any]:
        values = [self._routing.value(name) for name in self.labels]
        values[self.labels.index(label)] = self._routing.values(label, (k,))[0]
        return self.arguments.at_values(tuple(values))

    def _present(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name for name in names if name in self.arguments.values)

    def width_labels(self) -> set[str]:
        """The labels that set widths of this layer."""
        return {label for name in self.mixed_widths + self.channel_widths for label in self.arguments.labels_of(name)}

    def default_values(self) -> tuple:
        """The first value of every label (what NNI's dry run builds the layer with)."""
        return tuple(self.arguments.choices[label].values[0] for label in self.labels)

    def candidate_outputs(self, *inputs: Any, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """Outputs at every value of each label that does not set a width (kernel sizes...): their shapes agree."""
        shape_labels = [label for label in self.labels if label not in self.width_labels()]
        for label in shape_labels:
            for k, value in enumerate(self.arguments.choices[label].values):
                yield f'{label}={value!r}', self.run(self._args_with(label, k), *inputs, **kwargs)

    # ------------------------------------------------------------------------------------------- freeze

    def freeze(self, sample: dict[str, Any]) -> nn.Module:
        """The layer at the sample's values (a plain ``layer_type``), with its slice of the weights."""
        self.validate(sample)
        args = self.arguments.at_sample(sample)
        frozen = self.layer_at(args)
        frozen.load_state_dict(self.sliced_state(args))
        frozen.train(self.training)
        return frozen

    # ------------------------------------------------------------------------------------------ mutation

    @classmethod
    def accepts(cls, arguments: dict[str, Any]) -> bool:
        """Whether the slicing rule covers these arguments (otherwise the fallback takes the layer)."""
        return not any(is_choice(arguments.get(name)) for name in cls.fixed_arguments)

    @classmethod
    def layer_type_of(cls, module: nn.Module) -> type[nn.Module] | None:
        """The plain class of a parametrized ``module`` this rule covers (NNI's ``Mutable<X>`` wraps one)."""
        wrapped = bound_type(type(module))
        return wrapped if isinstance(wrapped, type) and issubclass(wrapped, cls.bound_type) else None

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict, mutate_kwargs: dict) -> 'SlicedOp | None':
        """Mutation hook: replace a ``Mutable<X>`` of this kind whose arguments hold choices."""
        if not isinstance(module, ParametrizedModule) or not module.mutables:
            return None
        layer_type = cls.layer_type_of(module)
        if layer_type is None:
            return None
        arguments = bound_arguments(module)
        if not cls.accepts(arguments):
            return None
        op = cls(arguments, mutate_kwargs['arch'].routing, f'{type(module).__name__} at {name!r}', layer_type)
        for choice in op.arguments.choices.values():
            register_choice(mutate_kwargs, choice)
        return op


def bound_arguments(module: ParametrizedModule) -> dict[str, Any]:
    """A parametrized module's constructor arguments by name, defaults included (choices left as they are)."""
    signature = _signature(type(module))
    bound = signature.bind(None, *module.trace_args, **module.trace_kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(signature.parameters)))  # self
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(arguments.pop(name, {}))
    return arguments


@functools.lru_cache(maxsize=None)
def _signature(cls: type) -> inspect.Signature:
    return inspect.signature(wrapped_init(cls))


def sliced_parameter(parameter: torch.Tensor | None, index: tuple[Any, ...]) -> torch.Tensor | None:
    """``parameter[index]`` (autograd's own slicing: the gradient is the full parameter's, zero outside the slice).

    Args:
        parameter: a parameter of the max-size layer, or ``None`` where the layer has none (``bias=False``).
        index: basic indexing (slices, ``...``).
    """
    return None if parameter is None else parameter[index]


def pad_to(output: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``output`` zero-padded along ``dim`` to ``width`` (unchanged when already that wide)."""
    missing = width - output.shape[dim]
    if missing <= 0:
        return output
    dim = dim % output.dim()
    return F.pad(output, [0, 0] * (output.dim() - dim - 1) + [0, missing])


def fit(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``x`` with exactly ``width`` channels along ``dim``: its prefix, or zero-padded when narrower."""
    size = x.shape[dim]
    if size == width:
        return x
    return x.narrow(dim, 0, width) if size > width else pad_to(x, width, dim)
