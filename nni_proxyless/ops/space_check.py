"""A one-time check of the model space on its first input: every value of every choice runs, and widths line up.

NNI's ``freeze`` builds a network for each architecture of the space; the supernet runs them all as slices of one
network, which would let layers that do not agree train, validate and export architectures that NNI cannot build
(docs/search-spaces.md, "Widths that agree, values that run"). Before any training, :func:`check_space` runs the supernet in eval mode,
without gradients, on one sample at:

* every label at its first value, every depth at its greatest (so that every block runs);
* each other value of each label that a layer's argument or a depth reads, one label at a time;
* every label at its k-th value, for each k (the other candidates of layer, input and cell choices).

That is about as many forwards as those labels have values. In each, every sliced layer that consumes channels
(convolution, linear, norm, attention, ...) compares the width of its input with the width its arguments declare;
one that differs is refused with a :class:`~.base.SpaceError` naming it, its argument and labels, the layer giving
the width (the last one before it whose output had that width in every run) and its labels, and the architecture.
Where the two widths are expressions that read more than one label between them, they are also compared at every
combination of those labels' values. A run that raises is refused naming the module it failed in, that module's
input shapes, the label and value that broke it and the arguments that read that label.

The check also tells each fallback op which of its labels size its input (their other values need another input:
:attr:`~.fallback.CombinationChoice.input_labels`), and refuses fallback candidates whose outputs differ in more
than one dimension.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

import torch
from torch import nn
from nni.mutable import MutableExpression

from ..routing import Routing, Selection
from ._probe_runs import Mismatch, ProbeRecorder, Run, Stop
from .base import MixedOp, SpaceError
from .fallback import CombinationChoice, widest_shape
from .gate import tensors_in
from .repeat import MixedRepeat
from .sliced import SlicedOp

__all__ = ['check_space', 'check_space_on_first_batch', 'reference_selections', 'positions']

_MAX_COMBINATIONS = 4096
"""Widths reading more label combinations than this are compared on the runs only."""


def check_space_on_first_batch(model: nn.Module, routing: Routing) -> None:
    """Install :func:`check_space` as a forward pre-hook on ``model``, on the first sample of its first input; the
    hook removes itself after the first call."""
    def check(module: nn.Module, args: tuple, kwargs: dict) -> None:
        handle.remove()
        batch = next(iter(tensors_in((args, kwargs))), None)
        size = batch.shape[0] if batch is not None and batch.dim() > 0 else -1
        check_space(module, routing, _first_sample(args, size), _first_sample(kwargs, size),
                    'The first sample of the first batch')

    handle = model.register_forward_pre_hook(check, with_kwargs=True)


def check_space(model: nn.Module, routing: Routing, args: tuple, kwargs: Mapping[str, Any], input_name: str) -> None:
    """Run ``model`` at the samples of the module docstring on ``args`` and ``kwargs``.

    Args:
        model: the supernet.
        routing: its routing (restored afterwards).
        args: the positional inputs of the model (one sample is enough).
        kwargs: its keyword inputs.
        input_name: names the input in messages, e.g. ``'The dummy input'``.

    Raises:
        SpaceError: widths that do not line up, a sample that fails to run, fallback candidates whose outputs
            cannot be compared (each message names the layers, labels and the fix).
    """
    ops = [m for m in model.modules() if isinstance(m, MixedOp)]
    if not ops:
        return
    recorder = ProbeRecorder(model)
    was_training, threads = model.training, torch.get_num_threads()
    model.eval()
    torch.set_num_threads(1)  # one sample, only shapes matter: one thread avoids contention on small, busy machines
    try:
        with torch.no_grad(), recorder:
            for run in _runs(ops, routing):
                _run(model, routing, recorder, run, args, kwargs, input_name)
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)
    run = next((run for run in recorder.runs if run.mismatch is not None), None)
    if run is not None:
        found = run.mismatch
        producer = recorder.producer(found.consumer, run, found.position, found.actual, found.ndim)
        raise SpaceError(_width_message(recorder, found, producer, run, None))
    _check_expressions(recorder)
    _check_fallbacks(recorder)


def reference_selections(ops: list[MixedOp], position: int = 0) -> dict[str, Selection]:
    """Every label at candidate ``position`` (or its last), every depth at its greatest value, every input
    choice on its first inputs."""
    depths = {label for op in ops if isinstance(op, MixedRepeat) for label in op.labels}
    selections = {}
    for label, choice in ops[0].routing.choices.items():
        n = len(choice.values)
        if label in depths:
            selections[label] = Selection(active=(max(range(n), key=lambda k: choice.values[k]),))
        elif choice.kind == 'input':
            selections[label] = Selection(active=tuple(range(choice.n_chosen)))
        else:
            selections[label] = Selection(active=(min(position, n - 1),))
    return selections


def positions(ops: list[MixedOp]) -> range:
    """The candidate positions of :func:`reference_selections` (up to the most values a label has)."""
    return range(max(len(choice.values) for choice in ops[0].routing.choices.values()))


# ------------------------------------------------------------------------------------------------- runs

def _runs(ops: list[MixedOp], routing: Routing) -> list[Run]:
    """The samples to run, as :class:`Run` s: the base, each argument's or depth's label moved one value at a
    time, and every label at each position (duplicates left out)."""
    base = reference_selections(ops)
    depths = ', depths at their greatest' if any(isinstance(op, MixedRepeat) for op in ops) else ''
    runs = [Run(base, None, f'every label at its first value{depths}')]
    moved = dict.fromkeys(label for op in ops if isinstance(op, (SlicedOp, CombinationChoice, MixedRepeat))
                          for label in op.labels)
    for label in (label for label in routing.choices if label in moved):
        values = routing.choices[label].values
        for k in range(len(values)):
            if k != base[label].active[0]:
                runs.append(Run({**base, label: Selection(active=(k,))}, label,
                                f'the other labels at their first values{depths}'))
    for position in positions(ops)[1:]:
        runs.append(Run(reference_selections(ops, position), None,
                        f'every label at its value number {position + 1} (or its last)'))
    seen, kept = set(), []
    for run in runs:
        key = tuple(sorted((label, selection.active) for label, selection in run.selections.items()))
        if key not in seen:
            seen.add(key)
            kept.append(run)
    return kept


def _run(model: nn.Module, routing: Routing, recorder: ProbeRecorder, run: Run, args: tuple,
         kwargs: Mapping[str, Any], input_name: str) -> None:
    recorder.start(run)
    try:
        with routing.use(run.selections):
            model.forward(*args, **kwargs)  # not the model's own hooks: the first-batch checks after this one
    except Stop:
        return
    except SpaceError:
        raise
    except Exception as error:
        raise SpaceError(_failure_message(recorder, routing, run, error, args, input_name)) from error


def _first_sample(inputs: Any, batch: int) -> Any:
    """``inputs`` (tuples, lists, dicts of tensors) with every tensor of ``batch`` rows cut to its first row."""
    if isinstance(inputs, torch.Tensor):
        return inputs[:1] if inputs.dim() > 0 and inputs.shape[0] == batch else inputs
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_first_sample(x, batch) for x in inputs)
    if isinstance(inputs, dict):
        return {key: _first_sample(x, batch) for key, x in inputs.items()}
    return inputs


# --------------------------------------------------------------------------------------------- widths

def _check_expressions(recorder: ProbeRecorder) -> None:
    """Compare each consumer's declared width with its producer's at every combination of the labels they read,
    where they read more than one between them (runs move one label at a time)."""
    base = recorder.runs[0]
    for consumer in recorder.consumers:
        if id(consumer) not in base.inputs:
            continue
        position, width, ndim = base.inputs[id(consumer)]
        producer = recorder.producer(consumer, base, position, width, ndim)
        if not isinstance(producer, SlicedOp) or producer.output_width_argument is None:
            continue
        if producer.output_dim % ndim != consumer.output_dim % ndim:
            continue
        given = producer.arguments.values[producer.output_width_argument]
        read = consumer.arguments.values[consumer.input_width_argument]
        choices = {**producer.arguments.choices, **consumer.arguments.choices}
        labels = sorted(set(producer.arguments.labels_of(producer.output_width_argument))
                        | set(consumer.arguments.labels_of(consumer.input_width_argument)))
        if len(labels) < 2 or math.prod(len(choices[label].values) for label in labels) > _MAX_COMBINATIONS:
            continue
        for values in itertools.product(*(choices[label].values for label in labels)):
            sample = dict(zip(labels, values))
            if _evaluated(given, sample) != _evaluated(read, sample):
                mismatch = Mismatch(consumer, _evaluated(read, sample), _evaluated(given, sample), 0, ndim)
                raise SpaceError(_width_message(recorder, mismatch, producer, None, sample))


def _evaluated(value: Any, sample: dict[str, Any]) -> Any:
    return value.evaluate(sample) if isinstance(value, MutableExpression) else value


def _width_message(recorder: ProbeRecorder, mismatch: Mismatch, producer: nn.Module | None, run: Run | None,
                   sample: dict[str, Any] | None) -> str:
    consumer, argument = mismatch.consumer, mismatch.consumer.input_width_argument
    consumer_labels = consumer.arguments.labels_of(argument)
    unit = 'channels' if consumer.output_dim == 1 else 'features'
    text = (f'Widths do not line up: {consumer.where} reads {argument}={mismatch.declared}{_labels(consumer_labels)}, '
            f'but its input has {mismatch.actual} {unit} (dimension {consumer.output_dim})')
    producer_labels: tuple[str, ...] = ()
    if isinstance(producer, SlicedOp) and producer.output_width_argument is not None:
        producer_labels = producer.arguments.labels_of(producer.output_width_argument)
        text += (f', given by {producer.where} ({producer.output_width_argument}={mismatch.actual}'
                 f'{_labels(producer_labels)})')
    elif isinstance(producer, CombinationChoice):
        producer_labels = producer.labels
        text += f', given by {producer.where}{_labels(producer_labels)}'
    elif producer is not None:
        text += f', given by {recorder.describe(producer)} (a fixed width)'
    else:
        text += ' (no one layer before it gives that width in every run: a concatenation or a reshaping does)'
    if sample is None:
        shown = dict.fromkeys([*producer_labels, *consumer_labels, *([run.label] if run.label else [])])
        routing = consumer.routing
        sample = {label: routing.choices[label].values[run.selections[label].active[0]] for label in shown}
        where = f'{_assignment(sample)} ({run.text})' if sample else run.text
    else:
        where = _assignment(sample)
    return (f'{text}, at {where}. NNI would build a network that fails there. A layer must read the width the layer '
            f'before it gives: write both with the same label or the same expression (e.g. pass the nni.choice of '
            f'the layer before to {argument}).')


def _labels(labels: tuple[str, ...]) -> str:
    if not labels:
        return ', a constant'
    return f", label{'s' if len(labels) > 1 else ''} {', '.join(map(repr, labels))}"


def _assignment(sample: dict[str, Any]) -> str:
    return ', '.join(f'{label}={value!r}' for label, value in sample.items())


# ------------------------------------------------------------------------------------------- failures

def _failure_message(recorder: ProbeRecorder, routing: Routing, run: Run, error: Exception, args: tuple,
                     input_name: str) -> str:
    module, shapes = recorder.running[-1] if recorder.running else (recorder.model, [])
    failed = (f'{recorder.describe(module)} failed on inputs of shape {_shapes_text(shapes)}: '
              f'{type(error).__name__}: {error}')
    if run is recorder.runs[0]:
        shown = _shapes_text([tuple(x.shape) for x in args if isinstance(x, torch.Tensor)])
        return (f'{input_name} of shape {shown} cannot run through the model space with {run.text}: {failed}. Check '
                'that the input has the shape the space expects; if it does, the space fails at its first values.')
    if run.label is None:
        return (f'The model space fails to run with {run.text}: {failed}. Every value of a choice must give a network '
                'that runs (NNI would build one that fails the same way).')
    readers = _readers(recorder.model, run.label)
    value = routing.choices[run.label].values[run.selections[run.label].active[0]]
    return (f'The model space fails to run at {run.label}={value!r} ({run.text}): {failed}. The label '
            f'{run.label!r} is read by {readers}. Every value of a choice must give a network that runs (NNI would build one that fails the same way): '
            f'make the layers after it follow the choice (an expression of {run.label!r}), or remove the value.')


def _readers(model: nn.Module, label: str) -> str:
    """The mixed ops reading ``label``, with the arguments that hold it (at most three, then a count)."""
    found = []
    for name, op in model.named_modules():
        if not isinstance(op, MixedOp) or label not in op.labels:
            continue
        arguments = getattr(op, 'arguments', None)
        if arguments is not None:
            holding = [n for n in arguments.values if label in arguments.labels_of(n)]
            found.append(f"{op.where}, argument{'s' if len(holding) > 1 else ''} {', '.join(map(repr, holding))}")
        elif isinstance(op, MixedRepeat):
            found.append(f'the depth of Repeat at {name!r}')
        else:
            found.append(f'{type(op).__name__} at {name!r}')
    more = f' and {len(found) - 3} more' if len(found) > 3 else ''
    return '; '.join(found[:3]) + more


def _shapes_text(shapes: list) -> str:
    return ', '.join(str(shape) for shape in shapes) or '(none)'


# ------------------------------------------------------------------------------------------ fallbacks

def _check_fallbacks(recorder: ProbeRecorder) -> None:
    """Set each fallback op's input labels; refuse outputs of one label's values that differ in more than a width."""
    base = recorder.runs[0]
    for op in (recorder.modules[i] for i in recorder.fallbacks):
        op.input_labels = set()
        if id(op) not in base.fallbacks:
            continue
        inputs, output = base.fallbacks[id(op)]
        for label in op.labels:
            moved = [run.fallbacks[id(op)] for run in recorder.runs if run.label == label and id(op) in run.fallbacks]
            if any(found_inputs != inputs for found_inputs, _ in moved):
                op.input_labels.add(label)
            elif output is not None and all(shape is not None for _, shape in moved):
                widest_shape([output, *(shape for _, shape in moved)], f'{op.where}, label {label!r},')
