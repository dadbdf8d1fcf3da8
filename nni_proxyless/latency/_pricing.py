"""What to price in a supernet, and how the prices become a table's terms (used by :mod:`.build`).

Every kind of mixed op contributes its own terms:

* ``LayerChoice``: one cost per candidate, each candidate priced on the op's input, minus the choices nested in it;
* ``Repeat``: the own cost of every block that is not itself a choice, counted when the depth exceeds its index;
* a layer whose arguments are choices: one cost per combination of its labels (kernel size and widths are joint,
  not additive), the layer at those values priced on its input at the combination's width;
* ``Cell``: per slot, one cost per (input, operation) pair, the operation priced on that input's state;
* the fallback of separate modules: one cost per combination, its module on the input it received in the probe
  (the op's input where the probe never ran it);
* ``InputChoice``: nothing (choosing an input costs no work).

Calls are generated with a key; identical layers at identical shapes (common in stacked stages) share one key,
so the predictor prices each once. Modules for calls are built in chunks and dropped after pricing.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..labels import Condition
from ..ops import CombinationChoice, MixedCell, MixedInput, MixedLayer, MixedOp, MixedRepeat, SlicedOp
from ..ops.subnet import subnet_of
from .protocol import LatencyPredictor, ModuleCall
from .table import Term

__all__ = ['probe', 'price', 'terms_of']

_CHUNK = 256

Recorded = dict[int, tuple[tuple, dict]]


def probe(supernet: nn.Module, x: torch.Tensor, routings: list) -> Recorded:
    """The inputs of every mixed op and ``Repeat`` block, keyed by ``id(module)``, first seen in forwards of ``x``
    routed on each of ``routings`` in turn (call it in eval mode, without gradients).

    Candidates that a routing does not run (other ``LayerChoice`` candidates, other cell (input, operation)
    pairs) are run on their inputs too, so that the choices nested in them are recorded.
    """
    ops = [m for m in supernet.modules() if isinstance(m, MixedOp)]
    inputs: Recorded = {}

    def record(module: nn.Module, args: tuple, kwargs: dict) -> None:
        inputs.setdefault(id(module), (_detached(args), _detached(kwargs)))

    handles = [m.register_forward_pre_hook(record, with_kwargs=True) for m in ops + _own_parts(ops)]
    try:
        for selections in routings:
            with ops[0].routing.use(selections):
                supernet(x)
        with ops[0].routing.use(routings[0]):
            for op in ops:  # outer ops come first in modules(): their inputs are known when they are reached
                if id(op) in inputs and isinstance(op, (MixedLayer, MixedCell, MixedRepeat)):
                    for candidate, candidate_input in _candidates_with_inputs(op, inputs[id(op)]):
                        candidate(*candidate_input[0], **candidate_input[1])
    finally:
        for handle in handles:
            handle.remove()
    return inputs


def _own_parts(ops: list[MixedOp]) -> list[nn.Module]:
    """Modules inside mixed ops that cost something of their own, or whose own inputs are priced: ``Repeat``
    blocks, the one-block stage's reshaping, cells' preprocessors, the fallback's candidates."""
    parts: list[nn.Module] = []
    for op in ops:
        if isinstance(op, MixedRepeat):
            parts += [block for block in op.blocks if not isinstance(block, MixedOp)]
            parts += [op.first_output_transformation] if op.first_output_transformation is not None else []
        elif isinstance(op, MixedCell):
            parts.append(op.preprocessor)
        elif isinstance(op, CombinationChoice):
            parts += list(op.candidates)
    return parts


def _candidates_with_inputs(op: MixedOp, recorded: tuple[tuple, dict]) -> Iterator[tuple[nn.Module, tuple]]:
    args, kwargs = recorded
    if isinstance(op, MixedLayer):
        for candidate in op.candidates:
            yield candidate, (args, kwargs)
    elif isinstance(op, MixedRepeat):
        if op.first_output_transformation is not None and len(op.blocks) > 0:
            yield op.first_output_transformation, ((op.blocks[0](*args, **kwargs)[0],), {})
    else:
        states = op.states(*args, **kwargs)
        for per_input in op.candidates:
            for j, operations in enumerate(per_input):
                for operation in operations:
                    yield operation, ((states[j],), {})


def calls_of(supernet: nn.Module, inputs: Recorded, reference: dict[str, Any]
             ) -> Iterator[tuple[Any, Callable[[], ModuleCall]]]:
    """Every call to price but the whole network's, as ``(key, build the call)``; keys repeat where two calls are
    the same.

    Everything is priced as plain layers: a candidate as the layer it freezes to, and the candidates and cell
    operations with choices nested in them and the parts around choices (``Repeat`` blocks, a cell's preprocessor)
    as frozen copies on the ``reference`` architecture (an NNI sample), so that no price carries the cost of the
    mixed ops' own routing, nor the weights of their largest sizes.
    """
    for op in supernet.modules():
        if not isinstance(op, MixedOp) or id(op) not in inputs:
            continue
        args, kwargs = inputs[id(op)]
        if isinstance(op, SlicedOp):
            for values in op.arguments.combinations():
                found = op.arguments.at_values(values)
                yield _sliced_key(op, found, args), lambda op=op, found=found, args=args, kwargs=kwargs: \
                    ModuleCall(op.layer_at(found), op.inputs_at(found, args), kwargs)
        elif isinstance(op, MixedLayer):
            for candidate in op.candidates:
                yield id(candidate), lambda candidate=candidate, args=args, kwargs=kwargs: \
                    ModuleCall(subnet_of(candidate, reference), args, kwargs)
        elif isinstance(op, MixedCell):
            yield from _own_call(op.preprocessor, inputs, reference)
            with torch.no_grad():
                states = op.states(*args, **kwargs)
            for slot, per_input in enumerate(op.candidates):
                for j, operations in enumerate(per_input):
                    for k, operation in enumerate(operations):
                        yield (id(op), slot, j, k), lambda operation=operation, state=states[j]: \
                            ModuleCall(subnet_of(operation, reference), (state,), {})
        elif isinstance(op, CombinationChoice):
            for index, candidate in enumerate(op.candidates):
                own = inputs.get(id(candidate), (args, kwargs))
                yield (id(op), index), lambda candidate=candidate, own=own: ModuleCall(candidate, *own)
        elif isinstance(op, MixedRepeat):
            for part in [*op.blocks, op.first_output_transformation]:
                if part is not None and not isinstance(part, MixedOp):
                    yield from _own_call(part, inputs, reference)


def _own_call(part: nn.Module, inputs: Recorded, reference: dict[str, Any]
              ) -> Iterator[tuple[Any, Callable[[], ModuleCall]]]:
    if id(part) in inputs:
        yield id(part), lambda: ModuleCall(subnet_of(part, reference), *inputs[id(part)])


def price(calls: Iterator[tuple[Any, Callable[[], ModuleCall]]], source: LatencyPredictor) -> dict[Any, float]:
    """Each distinct key's price from ``source``, in chunks (built modules are dropped after each chunk)."""
    prices: dict[Any, float] = {}
    pending: dict[Any, Callable[[], ModuleCall]] = {}
    for key, make in calls:
        if key not in prices and key not in pending:
            pending[key] = make
        if len(pending) >= _CHUNK:
            _price_chunk(pending, source, prices)
    _price_chunk(pending, source, prices)
    return prices


def _price_chunk(pending: dict, source: LatencyPredictor, prices: dict) -> None:
    if pending:
        keys = list(pending)
        prices.update(zip(keys, source.predict([pending[key]() for key in keys])))
        pending.clear()


def terms_of(module: nn.Module, when: tuple, prices: dict, inputs: Recorded, terms: list[Term]) -> float:
    """Emit the terms of the choices under ``module``; return their cost on the current (reference) routing."""
    if isinstance(module, SlicedOp):
        args = inputs[id(module)][0]
        costs = [prices[_sliced_key(module, module.arguments.at_values(v), args)]
                 for v in module.arguments.combinations()]
        terms.append(Term(costs=tuple(costs), labels=module.labels, when=when))
        return prices[_sliced_key(module, module.arguments.at(module.routing), args)]
    if isinstance(module, MixedLayer):
        return _candidates_terms(module, when, prices, inputs, terms)
    if isinstance(module, MixedCell):
        return _cell_terms(module, when, prices, inputs, terms)
    if isinstance(module, CombinationChoice):
        costs = [prices[(id(module), module.candidate_index(v))] for v in module.arguments.combinations()]
        terms.append(Term(costs=tuple(costs), labels=module.labels, when=when))
        return prices[(id(module), module.candidate_index(tuple(module.routing.value(l) for l in module.labels)))]
    if isinstance(module, MixedRepeat):
        return _repeat_terms(module, when, prices, inputs, terms)
    if isinstance(module, MixedInput):
        return 0.0
    return sum(terms_of(child, when, prices, inputs, terms) for child in module.children())


def _candidates_terms(op: MixedLayer, when: tuple, prices: dict, inputs: Recorded, terms: list[Term]) -> float:
    costs, reference = [], 0.0
    for k, (candidate, value) in enumerate(zip(op.candidates, op.choice.values)):
        selected = Condition((op.label,), frozenset([(value,)]))
        nested = terms_of(candidate, when + (selected,), prices, inputs, terms)
        costs.append(prices[id(candidate)] - nested)
        if k == op.selection(op.label).active[0]:
            reference = prices[id(candidate)]
    terms.append(Term(costs=tuple(costs), labels=(op.label,), when=when))
    return reference


def _cell_terms(op: MixedCell, when: tuple, prices: dict, inputs: Recorded, terms: list[Term]) -> float:
    reference = _own_terms(op.preprocessor, when, prices, inputs, terms) + \
        terms_of(op.postprocessor, when, prices, inputs, terms)
    for slot, per_input in enumerate(op.candidates):
        labels = (op.inputs[slot].label, op.choices[slot].label)
        active = (op.selection(labels[0]).active[0], op.selection(labels[1]).active[0])
        costs = []
        for j, operations in enumerate(per_input):
            for k, (operation, name) in enumerate(zip(operations, op.choices[slot].values)):
                selected = Condition(labels, frozenset([((j,), name)]))
                nested = terms_of(operation, when + (selected,), prices, inputs, terms)
                costs.append(prices[(id(op), slot, j, k)] - nested)
                if (j, k) == active:
                    reference += prices[(id(op), slot, j, k)]
        terms.append(Term(costs=tuple(costs), labels=labels, when=when))
    return reference


def _repeat_terms(op: MixedRepeat, when: tuple, prices: dict, inputs: Recorded, terms: list[Term]) -> float:
    total = 0.0
    depth = op.depth.at(op.routing)['depth']
    for i, block in enumerate(op.blocks):
        cost = _own_terms(block, when + (op.depth.condition('depth', lambda d, i=i: d > i),), prices, inputs, terms)
        total += cost if i < depth else 0.0
    if op.first_output_transformation is not None:
        cost = _own_terms(op.first_output_transformation, when + (op.depth.condition('depth', lambda d: d == 1),),
                          prices, inputs, terms)
        total += cost if depth == 1 else 0.0
    return total


def _own_terms(part: nn.Module, when: tuple, prices: dict, inputs: Recorded, terms: list[Term]) -> float:
    """The terms of the choices in ``part``, plus its own cost as a constant under ``when``; returns its price."""
    nested = terms_of(part, when, prices, inputs, terms)
    if isinstance(part, MixedOp) or id(part) not in prices:
        return nested
    terms.append(Term(costs=(prices[id(part)] - nested,), when=when))  # even 0: tables of one space align
    return prices[id(part)]


def _sliced_key(op: SlicedOp, args: dict[str, Any], inputs: tuple) -> tuple:
    """Layers of one type, arguments and input shapes cost the same wherever they are."""
    shapes = []
    for x in inputs:
        if isinstance(x, torch.Tensor):
            shape = list(x.shape)
            if op.input_width_argument is not None:
                shape[op.output_dim] = args[op.input_width_argument]
            shapes.append(tuple(shape))
        else:
            shapes.append(repr(x))
    return op.layer_type.__qualname__, repr(sorted(args.items())), tuple(shapes)


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    return value
