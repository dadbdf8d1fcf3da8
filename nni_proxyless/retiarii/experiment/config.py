"""``RetiariiExeConfig``: NNI 2.x's experiment config, translated to NNI 3.0's ``NasExperimentConfig``.

A one-shot search (``execution_engine='oneshot'``, as 2.x one-shot scripts set) runs in this process with NNI
3.0's sequential engine; of the config it uses ``experiment_name``, ``experiment_working_directory``, ``debug``
and ``log_level``. The fields that schedule trials (``trial_concurrency``, ``max_trial_number``,
``max_experiment_duration``, ``trial_gpu_number``, ``training_service``, ...) mean nothing there: they are
accepted and listed once in a warning. ``execution_engine='py'`` with a multi-trial strategy becomes NNI 3.0's
training-service engine with every field passed on. 2.x's graph engines (``'base'``, ``'cgo'``,
``'benchmark'``) raise an error naming the replacement.
"""

from __future__ import annotations

import logging
import dataclasses
from dataclasses import dataclass
from typing import Any, List, Optional

from nni.experiment.config import ExperimentConfig, utils
from nni.nas.experiment import NasExperimentConfig

from ... import _checks
from ..._nni_internals import config_fields
from .._errors import RetiariiMigrationError

__all__ = ['RetiariiExeConfig']

_logger = logging.getLogger('nni.proxyless.retiarii')

ONE_SHOT, PYTHON = 'oneshot', 'py'
GRAPH_ENGINES = ('base', 'cgo', 'benchmark')
_ONE_SHOT_FIELDS = ('experiment_name', 'experiment_working_directory', 'debug', 'log_level')
_NAS_RESERVED = ('experiment_type', 'search_space', 'search_space_file', 'trial_command', 'trial_code_directory',
                 'use_annotation', 'tuner', 'assessor', 'advisor', 'execution_engine')


@dataclass(init=False)
class RetiariiExeConfig(ExperimentConfig):
    """NNI 2.x's ``RetiariiExeConfig``: ``RetiariiExeConfig('local')``, then set fields.

    Args:
        training_service_platform: ``'local'`` (what 2.x scripts pass), or another NNI training service.
        execution_engine: ``'oneshot'`` for one-shot strategies such as ``Proxyless``; ``'py'`` (2.x's default)
            for multi-trial ones. A one-shot strategy runs one-shot whatever this says, except that 2.x's graph
            engines ``'base'``, ``'cgo'`` and ``'benchmark'`` raise :class:`RetiariiMigrationError`.
        **kwargs: any field of NNI's ``ExperimentConfig`` (``experiment_name``, ``trial_concurrency``,
            ``max_trial_number``, ``max_experiment_duration``, ``trial_gpu_number``,
            ``experiment_working_directory``, ...).

    Example::

        config = RetiariiExeConfig('local')
        config.experiment_name = 'digits'
        config.execution_engine = 'oneshot'
        config.training_service.use_active_gpu = False   # ignored by a one-shot search (logged)
    """

    experiment_type: str = 'nas'
    execution_engine: Any = PYTHON
    dummy_input: Optional[List[int]] = None  # 2.x: graph engines only
    benchmark: Optional[str] = None
    max_concurrency_cgo: Optional[int] = None
    batch_waiting_time: Optional[int] = None

    def __init__(self, training_service_platform: Optional[str] = None, execution_engine: Any = PYTHON,
                 **kwargs: Any) -> None:
        super().__init__(training_service_platform, executionEngine=execution_engine, **kwargs)

    def engine_name(self) -> str:
        """``'oneshot'`` or ``'py'``.

        Raises:
            RetiariiMigrationError: a 2.x graph engine (``'base'``, ``'cgo'``, ``'benchmark'``).
            ValueError: any other name.
        """
        engine = self.execution_engine
        name = engine if isinstance(engine, str) else getattr(engine, 'name', engine)
        if name in GRAPH_ENGINES:
            raise RetiariiMigrationError(
                f"execution_engine={name!r} (NNI 2.x's graph execution engine) is not supported in NNI 3.0 through "
                "RetiariiExperiment. Use instead: execution_engine='oneshot' for one-shot strategies such as "
                "Proxyless, or NNI 3.0's NasExperiment with NasExperimentConfig('ts', 'graph', 'local') for "
                'multi-trial graph-based search (see docs/migrating.md).')
        if name not in (ONE_SHOT, PYTHON):
            _checks.fail('execution_engine', f'{ONE_SHOT!r} or {PYTHON!r}', engine)
        return name

    def to_nas_config(self, one_shot: bool) -> NasExperimentConfig:
        """The NNI 3.0 config of this experiment: sequential for a one-shot strategy, else training service."""
        self.engine_name()
        if one_shot:
            self._log_ignored()
            kept = {name: getattr(self, name) for name in _ONE_SHOT_FIELDS}
            return NasExperimentConfig('sequential', 'raw', **kept)
        passed = {name: value for name, value in self._values().items() if name not in _NAS_RESERVED}
        return NasExperimentConfig('ts', 'simplified', **passed)

    def _values(self) -> dict[str, Any]:
        names = [field.name for field in dataclasses.fields(ExperimentConfig)]
        return {name: getattr(self, name) for name in names if not utils.is_missing(getattr(self, name))}

    def _log_ignored(self) -> None:
        """One warning listing the fields set to something a one-shot search cannot honour (once per config)."""
        if getattr(self, '_ignored_logged', False):
            return
        self._ignored_logged = True
        ignored = [f'{name}={value!r}' for name, value in _changed_fields(self, _fresh_like(self))
                   if name.split('.')[0] not in (*_ONE_SHOT_FIELDS, *_NAS_RESERVED)]
        if ignored:
            _logger.warning('A one-shot search runs in this process (its length is the evaluator\'s max_epochs), so '
                            'these RetiariiExeConfig fields are ignored: %s', ', '.join(ignored))


def _fresh_like(config: RetiariiExeConfig) -> RetiariiExeConfig:
    service = config.training_service
    platform = None if utils.is_missing(service) else getattr(service, 'platform', None)
    return RetiariiExeConfig(platform)


def _changed_fields(config: Any, default: Any, prefix: str = '') -> list[tuple[str, Any]]:
    """``(name, value)`` for every field of ``config`` that differs from ``default`` (nested configs expanded)."""
    changed = []
    for field in config_fields(config):
        value, base = getattr(config, field.name), getattr(default, field.name, None)
        if utils.is_missing(value) or value == base:
            continue
        if hasattr(value, '__dataclass_fields__') and type(value) is type(base):
            changed += _changed_fields(value, base, f'{prefix}{field.name}.')
        else:
            changed.append((f'{prefix}{field.name}', value))
    return changed
