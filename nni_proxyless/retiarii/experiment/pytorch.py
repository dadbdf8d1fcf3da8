"""``RetiariiExperiment``: NNI 2.x's experiment class, a thin subclass of NNI 3.0's ``NasExperiment``.

Mirrors ``nni.retiarii.experiment.pytorch``. What differs from 2.x, and why:

* ``run(config, port)`` with a one-shot strategy: NNI 2.x never showed a one-shot search in the web UI. Here a
  port given explicitly shows it there (when the strategy is ``nni_proxyless.Proxyless``), exactly as
  ``Proxyless(web_ui=WebUI(port, experiment_name=config.experiment_name))`` does; ``run(config)`` (the port left
  at its default) or ``port=None`` shows none, as in 2.x. The environment variable ``NNI_PROXYLESS_WEB_UI=off``
  turns the web UI off even when a port is given (for CI running unchanged scripts). A one-shot run ends with
  :meth:`stop` (nothing is left running); the strategy's results stay, so ``export_top_models`` works after it.
* Multi-trial strategies run through NNI 3.0's training-service engine, whose manager always listens on the
  port (8080 by default), as in 2.x.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn
from nni.experiment import RunMode
from nni.nas.evaluator import Evaluator
from nni.nas.experiment import NasExperiment
from nni.nas.nn.pytorch import ModelSpace

from ... import _checks
from ..._nni_internals import OneShotStrategy, wait_completion
from ...strategy import Proxyless
from ...webui import WebUI
from ...webui._from_experiment import WEB_UI_ENV, web_ui_disabled
from .._errors import RetiariiMigrationError
from .config import ONE_SHOT, RetiariiExeConfig

__all__ = ['RetiariiExperiment', 'RetiariiExeConfig', 'DEFAULT_PORT', 'WEB_UI_ENV']

_logger = logging.getLogger('nni.proxyless.retiarii')


class _DefaultPort(int):
    """NNI 2.x's default port (8080), told apart from an explicit ``8080`` by identity."""


DEFAULT_PORT = _DefaultPort(8080)


class RetiariiExperiment(NasExperiment):
    """NNI 2.x's ``RetiariiExperiment(base_model, evaluator, applied_mutators, strategy)`` on NNI 3.0.

    Args:
        base_model: the search space: an instance of a ``@model_wrapper`` class (or of an NNI 3.0 ``ModelSpace``).
        evaluator: an NNI Lightning evaluator (``pl.Classification``, ``pl.Regression``, ``pl.Lightning``) or,
            for multi-trial strategies, a ``FunctionalEvaluator``.
        applied_mutators: must be empty: NNI 3.0 has no mutators.
        strategy: e.g. ``strategy.Proxyless()`` (``nni_proxyless.Proxyless``).

    Raises:
        RetiariiMigrationError: ``applied_mutators`` is not empty, or ``evaluator`` is a 2.x one-shot trainer.
        TypeError: ``base_model`` is not a model space, or ``evaluator`` is not an NNI evaluator.
        ValueError: ``evaluator`` or ``strategy`` is missing.

    Example::

        exp = RetiariiExperiment(Net(), evaluator, [], strategy.Proxyless())
        config = RetiariiExeConfig('local')
        config.execution_engine = 'oneshot'
        exp.run(config, 8081)                      # shown in NNI's web UI on port 8081
        print(exp.export_top_models(top_k=3, formatter='dict'))
    """

    def __init__(self, base_model: nn.Module, evaluator: Evaluator | None = None,
                 applied_mutators: list | None = None, strategy: Any = None) -> None:
        if applied_mutators:
            raise RetiariiMigrationError(
                'applied_mutators is not supported in NNI 3.0 (nni.retiarii was removed, and mutators with it). Use '
                'instead: a ModelSpace (@model_wrapper class) with mutables: nn.LayerChoice, nn.InputChoice, '
                'nn.Repeat, or a custom nni.nas.nn.pytorch.MutableModule; pass applied_mutators=[] (see '
                'docs/migrating.md).')
        _check_arguments(base_model, evaluator, strategy)
        one_shot = isinstance(strategy, OneShotStrategy)
        placeholder = RetiariiExeConfig('local', execution_engine=ONE_SHOT if one_shot else 'py')
        super().__init__(base_model, evaluator, strategy, config=placeholder.to_nas_config(one_shot))
        self.base_model = base_model
        self.applied_mutators: list = []
        self.retiarii_config: RetiariiExeConfig | None = None
        self._started = self._stopped = False

    @property
    def one_shot(self) -> bool:
        """Whether the strategy is a one-shot strategy (it runs in this process)."""
        return isinstance(self.strategy, OneShotStrategy)

    @property
    def web_ui(self) -> WebUI | None:
        """The web UI showing a ``Proxyless`` search (``web_ui.experiment_id`` is what ``nnictl view`` takes)."""
        return self.strategy.web_ui if isinstance(self.strategy, Proxyless) else None

    def run(self, config: RetiariiExeConfig | None = None, port: int | None = DEFAULT_PORT,
            debug: bool = False) -> None:
        """Run the search to its end (NNI 2.x's signature).

        Args:
            config: the experiment's config; ``None`` means ``RetiariiExeConfig(execution_engine='oneshot')``.
            port: a port given explicitly shows a one-shot ``Proxyless`` search in NNI's web UI on that port
                (``nnictl view`` reopens it later); left at its default, or ``None``, there is no web UI. A
                multi-trial strategy's NNI manager always listens on it (default 8080).
            debug: NNI's debug logging.
        """
        if config is not None:
            self.retiarii_config = config
        try:
            self.start(port, debug)
            if not self.one_shot:
                wait_completion(self)
        except KeyboardInterrupt:
            _logger.warning('KeyboardInterrupt: stopping the experiment')
            self.stop()
        finally:
            if self.one_shot:
                self.stop()

    def start(self, port: int | None = DEFAULT_PORT, debug: bool = False,
              run_mode: RunMode = RunMode.Background) -> None:
        """Start the experiment with ``self.retiarii_config``; like NNI 3.0's, it returns when the strategy ends.

        Args:
            port: as for :meth:`run`.
            debug: NNI's debug logging.
            run_mode: NNI's run mode of the manager (multi-trial strategies only).

        Raises:
            RuntimeError: the experiment was started before (an experiment runs once).
        """
        if self._started:
            raise RuntimeError('This RetiariiExperiment was already started; an experiment runs once. '
                               'Create a new one (with a new model space) to search again.')
        config = self.retiarii_config or RetiariiExeConfig(execution_engine=ONE_SHOT)
        self.retiarii_config = config
        if config.engine_name() == ONE_SHOT and not self.one_shot:
            raise ValueError(f"execution_engine='oneshot' needs a one-shot strategy (Proxyless, DARTS, ENAS, ...), "
                             f"got {type(self.strategy).__name__}; use execution_engine='py' for multi-trial ones.")
        self.config = config.to_nas_config(self.one_shot)
        if not self.one_shot and port is None:
            raise ValueError('A multi-trial strategy runs its trials under NNI\'s manager, which needs a port; '
                             'got port=None.')
        self._started = True
        if self.one_shot and not self._shows_web_ui(port):
            super().start(debug=debug, run_mode=run_mode)  # NNI's default port: the strategy shows no web UI
        else:
            super().start(int(port), debug, run_mode)  # Proxyless shows the search on that port

    def stop(self) -> None:
        """Stop the experiment (safe to call more than once; nothing happens before it started)."""
        if self._started and not self._stopped:
            self._stopped = True
            super().stop()

    def export_top_models(self, top_k: int = 1, optimize_mode: str = 'maximize',  # type: ignore[override]
                          formatter: str = 'dict') -> list[Any]:
        """The ``top_k`` best architectures (NNI 2.x's signature).

        Args:
            top_k: how many (``Proxyless`` gives the exact ``top_k`` most probable, most probable first).
            optimize_mode: ``'maximize'`` or ``'minimize'``; NNI 3.0's strategies rank by themselves, so it
                is checked and otherwise unused (one-shot strategies ignored it in 2.x too).
            formatter: ``'dict'`` (architecture dicts, what ``model_space.freeze`` takes) or ``'instance'``
                (the models; with ``Proxyless``, with the supernet's trained weights).

        Raises:
            RetiariiMigrationError: ``formatter='code'``.
            ValueError: another ``formatter`` or ``optimize_mode``.
        """
        if formatter == 'code':
            raise RetiariiMigrationError(
                "export_top_models(formatter='code') is not supported in NNI 3.0: it printed the code of 2.x's graph "
                "execution engine, which Python model spaces no longer use. Use instead: formatter='dict' and "
                "model_space.freeze(arch) (or formatter='instance' for the model itself); see docs/migrating.md.")
        _checks.one_of('formatter', formatter, ('dict', 'instance'))
        _checks.one_of('optimize_mode', optimize_mode, ('maximize', 'minimize'))
        return super().export_top_models(top_k, formatter=formatter)

    def _shows_web_ui(self, port: int | None) -> bool:
        """Whether the port given to a one-shot run brings up the web UI (the strategy starts it, seeing the
        port passed on to NNI's ``NasExperiment.start``; see :mod:`nni_proxyless.webui._from_experiment`)."""
        if port is None or port is DEFAULT_PORT or web_ui_disabled():
            return False
        if not isinstance(self.strategy, Proxyless):
            _logger.warning('Port %s ignored: the web UI shows one-shot searches of nni_proxyless.Proxyless only; '
                            '%s runs without it.', port, type(self.strategy).__name__)
            return False
        if self.strategy.web_ui is not None:
            _logger.warning('Port %s ignored: the strategy was given its own web_ui.', port)
            return False
        return True

def _check_arguments(base_model: Any, evaluator: Any, strategy: Any) -> None:
    if not isinstance(base_model, ModelSpace):
        name = type(base_model).__name__
        raise TypeError(f'base_model must be a model space, got {name}: decorate its class with @model_wrapper '
                        f'(from nni_proxyless.retiarii import model_wrapper), or derive {name} from NNI 3.0\'s '
                        'nni.nas.nn.pytorch.ModelSpace.')
    if evaluator is None:
        raise ValueError('evaluator is required, e.g. pl.Classification(...) from '
                         'nni_proxyless.retiarii.evaluator.pytorch.lightning.')
    if not isinstance(evaluator, Evaluator) and hasattr(evaluator, 'export'):
        raise RetiariiMigrationError(
            f'A one-shot trainer ({type(evaluator).__name__}) as the evaluator of RetiariiExperiment is not supported '
            'in NNI 3.0. Use instead: call the trainer directly, trainer.train() then trainer.export() '
            '(nni_proxyless.ProxylessTrainer), or strategy=Proxyless() with a pl.Classification / pl.Lightning '
            'evaluator (see docs/migrating.md).')
    if not isinstance(evaluator, Evaluator):
        raise TypeError(f'evaluator must be an NNI evaluator (pl.Classification, pl.Regression, pl.Lightning, '
                        f'FunctionalEvaluator), got {type(evaluator).__name__}.')
    if strategy is None:
        raise ValueError('strategy is required, e.g. strategy=strategy.Proxyless() '
                         '(import nni_proxyless.retiarii.strategy as strategy).')
