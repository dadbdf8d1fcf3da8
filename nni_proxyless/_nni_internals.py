"""Every private or undocumented name of NNI (and Lightning) the package uses, reached through this one module.

NNI 3.0 leaves no public way to do a few things a strategy plugin needs: subclass its one-shot strategy, read the
port given to ``NasExperiment.run``, run its manager with a tuner of our own. What the package takes from NNI's
internals for that is listed in :data:`INTERNALS`, one row each: the name the package uses, where NNI (or
Lightning) has it, why the package needs it, and what the package relies on (parameters, locals read from a
frame, what its source must mention). Other modules import these names from here, never from NNI directly;
NNI's documented API (``nni.nas.nn.pytorch``, ``nni.mutable``, ``nni.nas.space``, ``NasExperiment``,
``nni.nas.evaluator.pytorch``, ``nni.nas.strategy``, ``nni.experiment``) they import as usual.

Every row was checked against the versions in :data:`CHECKED_AGAINST`; ``tests/test_nni_internals.py`` checks
them against the installed ones, so an upgrade that moves or changes one fails there, naming what and where.
Rows marked ``import`` are attributes of this module, imported on first use (the web UI's relay process imports
the web UI without torch); ``helper`` rows are what the functions below rely on; ``override`` rows are NNI methods
the package's subclasses override, which must keep NNI's name (``Proxyless._run``,
``ExperimentTunedHere._start_nni_manager``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import sys
from dataclasses import dataclass
from typing import Any, Literal

CHECKED_AGAINST = {'nni': '3.0', 'pytorch_lightning': '2.6.6'}
"""The releases every row of :data:`INTERNALS` was checked against, by distribution."""


@dataclass(frozen=True)
class Internal:
    """One thing of NNI's (or Lightning's) internals the package relies on.

    Attributes:
        name: this module's name for it (``how='import'``), or what relies on it (a helper or constant of this
            module, a method the package overrides).
        where: ``'module:qualified.name'`` where NNI has it (``'module'``: the module itself).
        why: what the package needs it for.
        how: ``'import'`` (other modules import ``name`` from here), ``'helper'`` (a function or constant of this
            module relies on it) or ``'override'`` (a subclass in the package overrides it).
        parameters: parameters of the callable at ``where`` that the package passes, receives or overrides.
        locals: local variables of the function at ``where`` that the package reads from its frame.
        mentions: text its source must hold (attributes the package reads or sets, messages it drops).
        named_by_module: the package recognises it by ``__module__``: it must be defined at ``where``'s module.
    """

    name: str
    where: str
    why: str
    how: Literal['import', 'helper', 'override'] = 'import'
    parameters: tuple[str, ...] = ()
    locals: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    named_by_module: bool = False

    def resolve(self) -> Any:
        """What ``where`` names, imported now (``ImportError`` / ``AttributeError`` when it moved)."""
        return _imported(self.where)


_ONE_SHOT = 'nni.nas.oneshot.pytorch'
_NN = 'nni.nas.nn.pytorch'
_HUB = 'nni.nas.hub.pytorch'
_EXPERIMENT = 'nni.experiment.experiment:Experiment'
_NAS_EXPERIMENT = 'nni.nas.experiment:NasExperiment'
_TRIAL_CHANNEL = 'nni.runtime.trial_command_channel'
_TUNER_CHANNEL = 'nni.runtime.tuner_command_channel'

INTERNALS: list[Internal] = [
    # ---- the one-shot strategy protocol
    Internal('OneShotStrategy', f'{_ONE_SHOT}.strategy:OneShotStrategy', 'Proxyless\'s base class: NNI runs one-shot '
             'strategies through its mutate_model / configure_oneshot_module / list_models; no public package exports '
             'it', parameters=('mutation_hooks',)),
    Internal('OneShotStrategy._run', f'{_ONE_SHOT}.strategy:OneShotStrategy._run', 'Proxyless._run wraps the '
             'training (web UI, experiment names) around it', how='override', parameters=('self',)),
    Internal('Strategy.run', 'nni.nas.strategy.base:Strategy.run', 'NNI runs a strategy through _run, which '
             'Proxyless overrides', how='override', mentions=('self._run()',)),
    Internal('no_default_hook', f'{_ONE_SHOT}.strategy:no_default_hook', 'the last mutation hook: refuses a choice no '
             'mixed op replaced', parameters=('module', 'name', 'memo', 'mutate_kwargs')),
    Internal('BaseSuperNetModule', f'{_ONE_SHOT}.supermodule.base:BaseSuperNetModule', 'the mixed ops\' base class '
             '(NNI\'s one-shot module finds them by it); a space\'s hooks that build NNI\'s own ones are dropped'),
    Internal('BaseSuperNetModule.mutate', f'{_ONE_SHOT}.supermodule.base:BaseSuperNetModule.mutate', 'mutation hooks '
             'are called as NNI calls them', how='helper', parameters=('module', 'name', 'memo', 'mutate_kwargs')),
    Internal('BaseOneShotLightningModule', f'{_ONE_SHOT}.base_lightning:BaseOneShotLightningModule', 'the training '
             'module\'s base class: it wraps the evaluator\'s LightningModule', parameters=('training_module',)),
    Internal('BaseOneShotLightningModule.set_model',
             f'{_ONE_SHOT}.base_lightning:BaseOneShotLightningModule.set_model', 'ProxylessModule finds its mixed ops '
             'when NNI sets the supernet', how='override', parameters=('model',)),
    # ---- choices: what the mixed ops do as NNI's fixed modules do
    Internal('create_cell_op_candidates', f'{_NN}.cell:create_cell_op_candidates', 'a cell\'s operations, built per '
             'input index as NNI\'s Cell builds them',
             parameters=('op_candidates', 'node_index', 'op_index', 'chosen')),
    Internal('preprocess_cell_inputs', f'{_NN}.cell:preprocess_cell_inputs', 'a cell\'s inputs, flattened as NNI\'s '
             'Cell does', parameters=('num_predecessors', 'inputs')),
    Internal('tensor_reduction', f'{_NN}.choice:ChosenInputs._tensor_reduction', 'an InputChoice\'s chosen inputs, '
             'reduced as NNI\'s fixed ChosenInputs does', parameters=('reduction_type', 'tensor_list')),
    Internal('check_any_module_contains', f'{_NN}.repeat:Repeat._check_any_module_contains', 'a Repeat\'s blocks '
             'validate a sample with NNI\'s own message', parameters=('module', 'sample', 'path')),
    # ---- model spaces: NNI 2.x's @model_wrapper on NNI 3.0, and layers copied out of a space
    Internal('strict_label_scope', f'{_NN}.base:strict_label_scope', 'base of @model_wrapper\'s label scope (hides '
             'its own name from the labels made in it)', parameters=('basename',)),
    Internal('model_space_init_wrapper', f'{_NN}.base:model_space_init_wrapper', '@model_wrapper runs the user\'s '
             '__init__ in NNI\'s label scope and dry-run context', parameters=('original_init_fn',),
             mentions=("hasattr(self, '_label_scope')", 'self._frozen_context')),
    Internal('ModelSpace.__init_subclass__', f'{_NN}.base:ModelSpace.__init_subclass__', 'a @model_wrapper class is '
             'a ModelSpace whose __init__ the package wraps itself', how='helper',
             parameters=('disable_init_wrapper',)),
    Internal('TraceableMixin._init_wrapped', f'{_NN}.base:TraceableMixin.auto_save_init_arguments', 'NNI records a '
             'module\'s arguments against this init; the slicing rules bind them with its signature', how='helper',
             mentions=("'_init_wrapped'",)),
    Internal('ParametrizedModule._bound_type', f'{_NN}.base:ParametrizedModule._bound_type', 'the torch layer a '
             'Mutable<X> wraps: the slicing rules and exported subnets use it', how='helper'),
    Internal('MutableModule._mutables', f'{_NN}.base:MutableModule.add_mutable', 'a mixed op keeps the choices it '
             'stands for without add_mutable\'s dry run; exported subnets drop them', how='helper',
             mentions=('self._mutables',)),
    Internal('TraceableMixin.trace_args', f'{_NN}.base:TraceableMixin.save_init_arguments', 'exported subnets drop '
             'the recorded arguments (they hold choices)', how='helper',
             mentions=('self.trace_args', 'self.trace_kwargs')),
    Internal('MODEL_WRAPPER_MARK', 'nni.nas.utils._legacy:is_model_wrapped', 'a @model_wrapper class carries NNI '
             '2.x\'s mark, which NNI still reads', how='helper', mentions=("'_nni_model_wrapper'",)),
    Internal('BASIC_UNIT_MARK', 'nni.nas.utils._legacy:is_basic_unit', '@basic_unit sets NNI 2.x\'s mark, which NNI '
             'still reads', how='helper', mentions=("'_nni_basic_unit'",)),
    # ---- NNI's hub spaces, recognised by module and name (importing the hub costs seconds)
    Internal('PROXYLESSNAS_RESIDUAL_BLOCKS', f'{_HUB}.proxylessnas:InvertedResidual', 'exported subnets replace its '
             'forward (x + super().forward(x), which TorchScript cannot compile)', how='helper',
             mentions=('self.has_skip', 'x + super().forward(x)'), named_by_module=True),
    Internal('PROXYLESSNAS_RESIDUAL_BLOCKS', f'{_HUB}.proxylessnas:DepthwiseSeparableConv', 'as InvertedResidual',
             how='helper', mentions=('self.has_skip', 'x + super().forward(x)'), named_by_module=True),
    Internal('AUTOFORMER_MODULE', f'{_HUB}.autoformer:ClassToken', 'AutoFormer\'s class token is sliced along '
             'embed_dim', how='helper', mentions=('self.cls_token',), named_by_module=True),
    Internal('AUTOFORMER_MODULE', f'{_HUB}.autoformer:AbsolutePositionEmbedding', 'AutoFormer\'s position '
             'embedding is sliced along embed_dim', how='helper', mentions=('self.pos_embed',), named_by_module=True),
    # ---- NNI's hub modules whose classes exported subnets give a forward TorchScript compiles (ops/_scriptable.py
    #      writes each forward again; tests/test_hub_spaces.py checks it computes what NNI's does)
    Internal('hub_nasnet', f'{_HUB}.nasnet', 'NDS, NDSStage, CellPreprocessor and CellPostprocessor: their '
             'forwards, written again for TorchScript', mentions=('class NDS(', 'class NDSStage(',
                                                                  'def forward(self, cells):',
                                                                  'def forward(self, this_cell, previous_cells):')),
    Internal('hub_autoformer', f'{_HUB}.autoformer', 'RelativePosition2D, RelativePositionSelfAttention and '
             'TransformerEncoderLayer: their forwards, written again for TorchScript',
             mentions=('def forward(self, length_q, length_k):', 'class RelativePositionSelfAttention(',
                       'class TransformerEncoderLayer(')),
    Internal('hub_nasbench201', f'{_HUB}.nasbench201', 'Pooling: its forward, written again for TorchScript',
             mentions=('class Pooling(', 'if self.preprocess:')),
    # ---- experiments: what NNI does not hand a strategy, and the web UI's manager
    Internal('running_experiment', f'{_NAS_EXPERIMENT}.start', 'the web UI\'s port: NNI runs the strategy inside '
             'start, without passing it the port', how='helper', parameters=('port',), locals=('self', 'port')),
    Internal('running_experiment', f'{_EXPERIMENT}.run', 'run passes its port (NNI\'s default object when none is '
             'given) on to start', how='helper', parameters=('port',)),
    Internal('running_experiment', f'{_EXPERIMENT}.start', 'its default port is NNI\'s', how='helper',
             parameters=('port',)),
    Internal('running_experiment', f'{_EXPERIMENT}.resume', 'its default port is NNI\'s', how='helper',
             parameters=('port',)),
    Internal('running_experiment', f'{_EXPERIMENT}.run_or_resume', 'its default port is NNI\'s', how='helper',
             parameters=('port',)),
    Internal('export_arguments', f'{_NAS_EXPERIMENT}.export_top_models', 'export_top_models(top_k, latency_target=T): '
             'NNI calls list_models(limit=top_k) and drops the other keyword arguments', how='helper',
             parameters=('top_k', 'formatter', 'kwargs'), locals=('self', 'top_k', 'formatter', 'kwargs')),
    Internal('wait_completion', f'{_NAS_EXPERIMENT}._wait_completion', 'RetiariiExperiment.run waits for a '
             'multi-trial search as NNI 2.x\'s run did', how='helper', parameters=('self',)),
    Internal('Experiment._start_nni_manager', f'{_EXPERIMENT}._start_nni_manager', 'the web UI\'s manager waits '
             'for a tuner run in this process', how='override',
             parameters=('port', 'debug', 'run_mode', 'tuner_command_channel', 'tags')),
    Internal('Experiments', 'nni.tools.nnictl.config_utils:Experiments', 'names the experiment in '
             '`nnictl experiment list`'),
    Internal('Experiments.update_experiment', 'nni.tools.nnictl.config_utils:Experiments.update_experiment',
             'how the experiment is named', how='helper', parameters=('expId', 'key', 'value')),
    Internal('rest_get', 'nni.experiment.rest:get', 'the web UI reads its manager\'s status',
             parameters=('port', 'api')),
    Internal('config_fields', 'nni.experiment.config.utils:fields', 'RetiariiExeConfig lists the fields a one-shot '
             'search ignores', parameters=('config',)),
    # ---- NNI's command channels
    Internal('TrialCommandChannel', f'{_TRIAL_CHANNEL}:TrialCommandChannel', 'MetricReporter\'s channel: the '
             'reports of NNI\'s evaluators go through it'),
    Internal('TrialCommandChannel.receive_parameter', f'{_TRIAL_CHANNEL}:TrialCommandChannel.receive_parameter',
             'MetricReporter gives a retrained trial its architecture', how='override', parameters=('self',)),
    Internal('TrialCommandChannel.send_metric', f'{_TRIAL_CHANNEL}:TrialCommandChannel.send_metric', 'MetricReporter '
             'sees every report', how='override',
             parameters=('type', 'parameter_id', 'trial_job_id', 'sequence', 'value')),
    Internal('get_default_trial_command_channel', f'{_TRIAL_CHANNEL}:get_default_trial_command_channel',
             'the channel MetricReporter forwards to'),
    Internal('set_default_trial_command_channel', f'{_TRIAL_CHANNEL}:set_default_trial_command_channel',
             'MetricReporter puts its channel in front while a trainer runs', parameters=('channel',)),
    Internal('TunerCommandChannel', f'{_TUNER_CHANNEL}:TunerCommandChannel', 'the web UI\'s tuner, run in this '
             'process, talks to the manager', parameters=('url',),
             mentions=('def connect', 'def disconnect', 'def on_initialize', 'def on_request_trial_jobs',
                       'def send_initialized', 'def send_no_more_trial_jobs')),
    Internal('TunerCommandChannel.listen', f'{_TUNER_CHANNEL}:TunerCommandChannel.listen', 'the tuner answers from '
             'a thread until stopped', how='helper', parameters=('stop_event',)),
    Internal('send_command', f'{_TUNER_CHANNEL}:TunerCommandChannel._send', 'a trial sent as NNI\'s tuner process '
             'sends it (send_trial would import torch, Lightning and TensorFlow to record versions)', how='helper',
             parameters=('command_type', 'data')),
    Internal('CommandType', f'{_TUNER_CHANNEL}:CommandType', 'the command the tuner sends',
             mentions=('NewTrialJob',)),
    Internal('Initialize', f'{_TUNER_CHANNEL}.command_type:Initialize', 'the manager\'s first command: the search '
             'space', mentions=('search_space',)),
    Internal('RequestTrialJobs', f'{_TUNER_CHANNEL}.command_type:RequestTrialJobs', 'the manager asks for trials',
             mentions=('count',)),
    # ---- Lightning
    Internal('ddp_kwargs', 'pytorch_lightning.strategies.ddp:DDPStrategy', 'a search needs find_unused_parameters in '
             'the DDP strategy the user\'s evaluator already built', how='helper',
             mentions=('self._ddp_kwargs = kwargs', '**self._ddp_kwargs')),
    Internal('ignore_training_service', 'nni.nas.experiment.config.experiment:NasExperimentConfig._canonicalize',
             'NNI fills in a training service for every experiment and warns at each config check that a one-shot '
             '(sequential) one ignores it; left unassigned, it is set to local without a word',
             how='helper', mentions=('if not utils.is_missing(self.training_service):',
                                     "self.training_service = utils.training_service_config_factory('local')")),
    # ---- NNI's loggers (named by module) and the messages a search drops
    Internal('NNI_NOISE', 'nni.nas.experiment.config.experiment', 'its warning repeats for every one-shot '
             'experiment', how='helper', mentions=('getLogger(__name__)', '`training_service` will be ignored for '
                                                   'sequential execution engine')),
    Internal('NNI_NOISE', f'{_ONE_SHOT}.strategy', 'its warning is about a checkpoint callback one-shot search does '
             'not need', how='helper',
             mentions=('getLogger(__name__)', 'Checkpoint callback is found to be None in evaluator trainer')),
    Internal('NNI_NOISE', 'nni.experiment.experiment', 'the web UI\'s own update at its end', how='helper',
             mentions=("getLogger('nni.experiment')", "'Successfully update %s.', key")),
]
"""What the package relies on of NNI's and Lightning's internals, one row each."""

_IMPORTED = {row.name: row for row in INTERNALS if row.how == 'import'}

__all__ = ['CHECKED_AGAINST', 'INTERNALS', 'Internal', 'installed', 'NNI_BOOKKEEPING', 'LABEL_SCOPE',
           'MODEL_WRAPPER_MARK', 'BASIC_UNIT_MARK', 'NO_INIT_WRAPPER', 'PROXYLESSNAS_RESIDUAL_BLOCKS',
           'AUTOFORMER_MODULE', 'NNI_NOISE', 'bound_type', 'wrapped_init', 'set_wrapped_init',
           'init_model_space_subclass', 'keep_mutables', 'running_experiment', 'export_arguments',
           'ignore_training_service', 'wait_completion', 'send_command', 'ddp_kwargs', *_IMPORTED]

# ------------------------------------------------------------------------------ constants (checked above)

NNI_BOOKKEEPING = ('_mutables', 'trace_args', 'trace_kwargs', '_frozen_context', '_label_scope')
"""Attributes NNI's mutable modules and model spaces keep to describe or rebuild the space."""

LABEL_SCOPE = '_label_scope'
"""The attribute of a model space holding its label scope (NNI's init wrapper makes one unless it is set)."""

MODEL_WRAPPER_MARK, BASIC_UNIT_MARK = '_nni_model_wrapper', '_nni_basic_unit'
"""The class attributes NNI sets on ``@model_wrapper`` and ``@basic_unit`` classes (and still reads)."""

NO_INIT_WRAPPER = {'disable_init_wrapper': True}
"""Class keywords that make a ``ModelSpace`` subclass without NNI's init wrapper."""

PROXYLESSNAS_RESIDUAL_BLOCKS = {(f'{_HUB}.proxylessnas', 'InvertedResidual'),
                                (f'{_HUB}.proxylessnas', 'DepthwiseSeparableConv')}
"""NNI ``nn.Sequential`` blocks, by ``(__module__, __qualname__)``, whose forward is ``x + super().forward(x)``
when ``has_skip`` (else ``super().forward(x)``)."""

AUTOFORMER_MODULE = f'{_HUB}.autoformer'
"""Where AutoFormer's ``ClassToken`` and ``AbsolutePositionEmbedding`` are defined."""

NNI_NOISE = {
    'nni.nas.experiment.config.experiment': '`training_service` will be ignored for sequential execution engine',
    'nni.nas.oneshot.pytorch.strategy': 'Checkpoint callback is found to be None in evaluator trainer',
    'nni.experiment': 'Successfully update maxTrialNumber.',
}
"""NNI's messages that say nothing to a Proxyless user: logger name -> the start of the message."""


# ------------------------------------------------------------------------------ helpers


def bound_type(cls: type) -> type | None:
    """The torch layer class a ``Mutable<X>`` class wraps (``None``: none)."""
    return getattr(cls, '_bound_type', None)


def wrapped_init(cls: type) -> Any:
    """The ``__init__`` NNI records ``cls``'s arguments against (the user's, under NNI's wrappers)."""
    return getattr(cls, '_init_wrapped', cls.__init__)


def set_wrapped_init(cls: type, init: Any) -> None:
    """Make NNI record ``cls``'s arguments against ``init``."""
    cls._init_wrapped = init  # type: ignore[attr-defined]


def init_model_space_subclass(cls: type, **kwargs: Any) -> None:
    """Run ``ModelSpace.__init_subclass__`` for ``cls``, leaving its ``__init__`` unwrapped."""
    model_space = _imported(f'{_NN}:ModelSpace')
    model_space.__dict__['__init_subclass__'].__func__(cls, **NO_INIT_WRAPPER, **kwargs)


def keep_mutables(module: Any, mutables: list) -> None:
    """Give an NNI mutable module its mutables without ``add_mutable``, which would dry-run them again."""
    module._mutables = list(mutables)


def running_experiment() -> tuple[Any, int | None] | None:
    """The ``NasExperiment`` whose ``start`` runs the caller, and the port its caller gave (``None``: NNI's
    default); ``None`` outside an experiment (e.g. under ``ProxylessTrainer``).

    NNI's ``run`` / ``start`` default the port to 8080 and pass it on unchanged, so "no port given" is the very
    ``int`` object held by NNI's signatures, while a port the caller wrote, 8080 included, is another object.
    """
    found = _frame_locals('start')
    if found is None:
        return None
    port = found.get('port')
    given = port is not None and not any(port is default for default in _default_ports())
    return found['self'], int(port) if given else None


def export_arguments() -> dict[str, Any]:
    """The extra keyword arguments given to the running ``NasExperiment.export_top_models`` (``{}`` outside one)."""
    found = _frame_locals('export_top_models')
    return dict(found.get('kwargs') or {}) if found is not None else {}


def wait_completion(experiment: Any) -> bool:
    """Wait for the models a multi-trial experiment submitted (what NNI's own ``run`` does)."""
    return experiment._wait_completion()


def send_command(channel: Any, command_type: Any, data: str) -> None:
    """Send one command (already serialised) on NNI's tuner channel."""
    channel._send(command_type, data)


def ignore_training_service(experiment: Any) -> None:
    """Leave the experiment's ``training_service`` unassigned, as NNI's config checks of a one-shot experiment
    want it (they ignore it, with a warning each time, when it is set)."""
    experiment.config.training_service = dataclasses.MISSING  # NNI's "never assigned" for config fields


def ddp_kwargs(strategy: Any) -> dict[str, Any]:
    """The keyword arguments Lightning's ``DDPStrategy`` will give ``DistributedDataParallel`` (the dict itself)."""
    return strategy._ddp_kwargs


def _frame_locals(method: str) -> dict[str, Any] | None:
    """The locals, read-only, of the innermost ``NasExperiment.<method>`` on the call stack (``None``: none).

    The strategy runs inside those calls, so it reads their arguments from the frame whose code is the method's
    own: nothing of NNI is patched or wrapped."""
    experiment = _imported(_NAS_EXPERIMENT)
    code = getattr(experiment, method).__code__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code and isinstance(frame.f_locals.get('self'), experiment):
            return dict(frame.f_locals)
        frame = frame.f_back
    return None


@functools.cache
def _default_ports() -> tuple[int, ...]:
    """The port defaults of NNI's ``run`` / ``start`` / ``resume`` (the objects themselves)."""
    holders = [row.resolve() for row in INTERNALS if row.name == 'running_experiment']
    return tuple(default for function in holders for default in function.__defaults__ or () if type(default) is int)


def __getattr__(name: str) -> Any:
    row = _IMPORTED.get(name)
    if row is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    try:
        value = row.resolve()
    except (ImportError, AttributeError) as error:
        raise ImportError(f'nni_proxyless needs {row.where} ({row.why}): {error}. It was checked against '
                          f'{CHECKED_AGAINST}, and {installed()} are installed; tests/test_nni_internals.py '
                          'checks every such name.') from error
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_IMPORTED))


def installed() -> dict[str, str]:
    """The installed releases of the distributions in :data:`CHECKED_AGAINST`."""
    return {name: importlib.metadata.version(name) for name in CHECKED_AGAINST}


def _imported(where: str) -> Any:
    module, _, qualified = where.partition(':')
    found: Any = importlib.import_module(module)
    for part in filter(None, qualified.split('.')):
        found = getattr(found, part)
    return found
