"""The ``Proxyless`` strategy: NNI's one-shot strategy protocol around the mixed ops and the training module.

Most of it is the documented arguments of the one public class users construct; the work is delegated (supernet,
latency, training module, export, web UI).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

import torch
from torch import nn
from nni.nas.evaluator.pytorch.lightning import Lightning, LightningModule
from nni.nas.nn.pytorch import ModelSpace
from nni.nas.space import RawFormatModelSpace

from . import _checks, _rerank
from ._console import CHECKPOINT_MESSAGE, dropped, quiet_experiment_start, search_console
from ._nni_internals import OneShotStrategy, export_arguments, no_default_hook, running_experiment
from .arch import ArchParameters, BinaryMode
from .export import Architecture, ExportedModelSpace, top_k
from .front import FrontPick, default_targets, latency_front
from .latency import LatencyObjective, LatencyTable
from .latency.config import LatencyConfig, check_target_reachable
from .latency.measure import MeasuredSubnetLatency
from .callbacks.plots import SearchPlots, front_plot
from .reinforce import ReinforceUpdate, check_reinforce_options
from .supernet import build_supernet, model_defined_hooks
from .training import ProxylessModule, SearchSettings

if TYPE_CHECKING:
    from .webui import WebUI

__all__ = ['Proxyless']

_logger = logging.getLogger('nni.proxyless')

FRONT_CANDIDATES = 1
"""Architectures compared per budget by :meth:`Proxyless.latency_front`: on the value-choice ground truth, 5 or 10
compared by their supernet accuracy picked no better than the most probable (docs/deploy.md)."""


class Proxyless(OneShotStrategy):
    """ProxylessNAS: one sampled path per step for the weights, binary-gate gradients for the architecture.

    "Direct Neural Architecture Search on Target Task and Hardware" (Cai et al., ICLR 2019). Each
    ``LayerChoice``, ``InputChoice``, ``Repeat`` (its depth a choice or an expression of choices), ``Cell``, and
    each layer whose arguments hold ``nni.choice`` values (``MutableConv2d``, ``MutableLinear``, ... sharing one
    max-size weight; other modules through one module per argument combination) becomes a mixed op; a label used
    in several places is one set of logits (see docs/search-spaces.md). Weight steps train one sampled path;
    every ``arch_update_every`` weight steps an architecture step trains the logits on a validation batch.
    Validation runs every epoch on the most probable architecture (within the export's latency limit, if any).
    ``export_top_models(top_k=k)`` returns the ``k`` most probable architectures, exactly, each with its
    probability (``formatter='dict'`` gives :class:`~nni_proxyless.Architecture` dicts;
    ``formatter='instance'`` gives the subnet with the supernet's trained weights); with ``rerank_top_k``, they
    are re-ranked by their validation metric with the supernet's weights (:meth:`rerank`).

    All arguments are keyword-only.

    Args:
        arc_learning_rate: learning rate of the architecture optimiser, Adam with betas (0, 0.999), eps 1e-8,
            no weight decay (the official settings). Default ``'auto'``: ``max(1e-3, 0.25 / sqrt(S))`` for a search
            of ``S`` architecture steps (counted from the trainer's epochs or steps, ``warmup_epochs`` and
            ``arch_update_every``): gradients of pure noise then move a logit by about 0.25 whatever the budget,
            consistent ones up to ``0.25 * sqrt(S)``, so the distribution moves as far as the evidence supports.
            ``arc_learning_rate=1e-3`` gives the official value (see :mod:`nni_proxyless.callbacks.convergence`).
            A search too short to tell the candidates apart is warned about when it starts.
        warmup_epochs: epochs of weight training before the architecture starts to move. Default 0. A warm-up
            that leaves the trainer no architecture step (``warmup_epochs >= max_epochs``) is warned about when
            the search starts.
        arch_update_every: weight steps per architecture step (the official code: 5). Default 5.
        binary_mode: ``'two'`` (default; two sampled candidates per label and the logit rescale, the paper's
            memory-saving mode) or ``'full_v2'`` (gates on every candidate).
        arch_update: ``'gradient'`` (binary-gate gradients; default) or ``'reinforce'`` (policy gradient over
            whole sampled architectures, the official code's second mode; see :mod:`nni_proxyless.reinforce`).
        reinforce_options: for ``'reinforce'``: ``samples`` (architectures per update, default 10),
            ``latency_weight`` (``w``, default -0.1), ``baseline_decay`` (default 0.99), ``metric``
            (``(output, batch) -> float``, default top-1 accuracy on ``(input, target)`` batches), ``input_of``
            (``batch -> input``, what the model runs on; default ``batch[0]``: give it and ``metric`` for dict
            batches), ``latency``
            (``'table'``, the default, or ``'measured'``: each sampled subnet timed on this machine at
            ``dummy_input``, on the GPU with ``applied_hardware='cuda'``, else on the CPU; cached per
            architecture). The reward's ``T`` is ``ref_latency``.
        grad_reg_loss_type: hardware term of the architecture loss: ``'add#linear'`` (default),
            ``'mul#log'`` or ``None``. Used only with ``applied_hardware``.
        grad_reg_loss_params: ``{'lambda': float}`` for ``'add#linear'``, ``{'alpha': float, 'beta': float}`` for
            ``'mul#log'``. Default ``None``: the official values, stated in the log.
        applied_hardware: where latency comes from (``None``, the default: no latency term). A predictor name
            (``'cpu'`` or ``'cuda'``: measured here; ``'flops'``: a proxy in MFLOPs; an nn-Meter device such as
            ``'cortexA76cpu_tflite21'``), a path to a saved latency table (``.json``), a
            :class:`~nni_proxyless.latency.LatencyTable`, or a predictor object (see
            :mod:`nni_proxyless.latency.predictors`).
        dummy_input: input shape the latency is measured at, e.g. ``(1, 3, 224, 224)`` (the default).
        ref_latency: reference latency in the table's unit: milliseconds (MFLOPs with ``'flops'``). Default 65.0.
        latency_target: hard latency limit, in the table's unit: only architectures predicted to meet it are
            exported, the most probable first (``None``, the default: no limit). It does not change the
            search (a latency loss scaled to the target pulls every label towards its cheap candidates, and on a
            ground truth made the export worse; see docs/arguments.md).
        deploy_targets: the latency budgets the search's architectures will be deployed under, in the table's
            unit (a list; ``None``, the default: none). One search then serves them all: the weight steps train
            paths drawn from the distribution within each budget in turn (see :mod:`nni_proxyless._budget_paths`),
            so that the subnets a small budget can use are trained, not only the large ones the distribution
            favours; :meth:`latency_front` picks one architecture per budget. Nothing above the largest budget is
            trained, so exports without a ``latency_target`` are limited to it, and so is the architecture
            validated each epoch. The architecture step is unchanged. On a ground
            truth, the smallest budget's pick after a 10-epoch search ranked 7th of 32 (median of 10 seeds)
            where a search not given the budgets picked the 22nd (docs/deploy.md).
        predictor_options: options for the predictor, e.g. ``{'threads': 1, 'cache_dir': ...}`` for ``'cpu'``,
            ``{'predictor_dir': ...}`` for nn-Meter.
        seed: seeds path sampling (``None``: derived from ``torch.initial_seed()``). Same seed, same search.
        web_ui: show the search in NNI's web UI: a port number, or a :class:`~nni_proxyless.webui.WebUI` (to
            choose the experiment's name and folder, or ``retrain_top_k``); ``None`` (the default): no web UI,
            unless a port is given to NNI's ``NasExperiment.run(port=...)`` / ``start(port)``, which does the
            same as ``web_ui=port`` (the experiment's name and folder are then the web UI's).
            The search then appears as a trial of a real NNI experiment: ``nnictl experiment list`` lists it,
            ``nnictl view`` reopens it, and the plots are saved in its folder. With
            ``WebUI(port, retrain_top_k=k)`` the top ``k`` architectures are then retrained from scratch as
            further trials; their records are in :attr:`retrained`.
        gradient_clip_val: clip the weight gradients to this norm (``None``: no clipping). Under
            ``precision='16-mixed'`` the gradients are clipped after the loss scale is taken out of them.
        bn_recalibration_batches: training batches that recompute the BatchNorm statistics of the most probable
            architecture before each validation (the search's own statistics are put back afterwards), and of
            every exported instance; 0 turns it off. Default 20.
        channels_last: train the supernet in the channels-last (NHWC) memory format: its convolution weights and
            image inputs are converted while the search runs (see :class:`~nni_proxyless.callbacks.ChannelsLast`).
            Faster for convolution-heavy spaces on GPUs with tensor cores, mostly under mixed precision.
            Default ``False``.
        rerank_top_k: 0 (the default) exports by probability. ``k > 0``: ``export_top_models(top_k=n)`` takes the
            ``max(k, n)`` most probable architectures (within ``latency_target``, if any), orders them by the
            evaluator's validation metric with the supernet's weights (:meth:`rerank`), best first (ties: the more
            probable first), and returns the first ``n``. It costs one pass over the validation data per
            candidate, plus its BatchNorm recalibration (``bn_recalibration_batches`` training batches).
        mutation_hooks: extra NNI mutation hooks, run before ours.

    Raises:
        ValueError: an argument is out of range or unknown (the message names it and what is allowed).

    Example::

        from nni.nas.experiment import NasExperiment
        from nni_proxyless import Proxyless

        exp = NasExperiment(model_space, evaluator, Proxyless(arch_update_every=5, seed=0))
        exp.run()
        for arch in exp.export_top_models(top_k=3, formatter='dict'):
            print(arch, arch.probability)
    """

    def __init__(self, *, arc_learning_rate: float | Literal['auto'] = 'auto', warmup_epochs: int = 0,
                 arch_update_every: int = 5, binary_mode: BinaryMode = 'two',
                 arch_update: Literal['gradient', 'reinforce'] = 'gradient',
                 reinforce_options: dict[str, Any] | None = None,
                 grad_reg_loss_type: str | None = 'add#linear', grad_reg_loss_params: dict | None = None,
                 applied_hardware: Any = None, dummy_input: Sequence[int] = (1, 3, 224, 224),
                 ref_latency: float = 65.0, latency_target: float | None = None,
                 deploy_targets: Sequence[float] | None = None, predictor_options: dict[str, Any] | None = None,
                 seed: int | None = None,
                 web_ui: 'int | WebUI | None' = None,
                 gradient_clip_val: float | None = None, bn_recalibration_batches: int = 20,
                 channels_last: bool = False, rerank_top_k: int = 0,
                 mutation_hooks: list[Callable] | None = None):
        super().__init__(mutation_hooks=mutation_hooks)
        quiet_experiment_start()
        self.settings = SearchSettings(arc_learning_rate=arc_learning_rate, warmup_epochs=warmup_epochs,
                                       arch_update_every=arch_update_every, binary_mode=binary_mode,
                                       gradient_clip_val=gradient_clip_val,
                                       bn_recalibration_batches=bn_recalibration_batches,
                                       channels_last=channels_last)
        self.arch_update = _checks.one_of('arch_update', arch_update, ('gradient', 'reinforce'))
        self.reinforce_options = check_reinforce_options(reinforce_options or {})
        self.seed = _checks.integer('seed', seed, optional=True)
        self.rerank_top_k = _checks.integer('rerank_top_k (0: off)', rerank_top_k, low=0)
        self.web_ui = _web_ui(web_ui)
        self.latency_config = LatencyConfig.checked(
            hardware=applied_hardware, loss_type=grad_reg_loss_type, loss_params=grad_reg_loss_params,
            ref_latency=ref_latency, dummy_input=dummy_input, target=latency_target, options=predictor_options,
            deploy_targets=deploy_targets)
        self.arch: ArchParameters | None = None
        self._latency: LatencyObjective | None = None
        self._supernet: nn.Module | None = None  # the model space mutated in place (set by mutate_model)
        self._arch_loader: Callable[[], Any] | None = None
        self._train_loader: Callable[[], Any] | None = None
        self.retrained: list[dict[str, Any]] = []  # with WebUI(retrain_top_k=k): one record per retrain trial

    # --------------------------------------------------------------------------------------- mutation

    def mutate_model(self, model: ModelSpace) -> ModelSpace:
        """Replace every choice of ``model`` (in place) by a mixed op sharing one :class:`ArchParameters`."""
        seed = self.seed if self.seed is not None else torch.initial_seed() % (2 ** 31)
        self.arch = ArchParameters(seed=seed)
        hooks = self.extra_mutation_hooks + model_defined_hooks(model, self)
        model = build_supernet(model, self.arch, hooks, finish=[no_default_hook])
        self._supernet = model
        if not self.arch.choices:
            raise ValueError(f'The model space {type(model).__name__} has no choice (LayerChoice, InputChoice, '
                             'Repeat with a depth choice, Cell, or nni.choice in layer arguments): there is nothing '
                             'to search.')
        if self.latency_config is not None:
            self._latency = self.latency_config.build(model)
        return model

    def mutate_evaluator(self, evaluator: Lightning) -> Lightning:
        if isinstance(evaluator, Lightning):
            if evaluator.datamodule is not None:
                self._arch_loader = evaluator.datamodule.val_dataloader
                self._train_loader = evaluator.datamodule.train_dataloader
            else:
                self._arch_loader = lambda: _first(evaluator.val_dataloaders)
                self._train_loader = lambda: _first(evaluator.train_dataloaders)
        return super().mutate_evaluator(evaluator)

    def configure_oneshot_module(self, training_module: LightningModule) -> ProxylessModule:
        assert self.arch is not None and self._arch_loader is not None, 'mutate_model runs first'
        _logger.info('Proxyless searches %d labels (seed %d): %s', len(self.arch.choices), self.arch.seed,
                     ', '.join(f'{label} ({len(c.values)})' for label, c in self.arch.choices.items()))
        deploy = self.latency_config.deploy_targets if self.latency_config is not None else ()
        return ProxylessModule(training_module, arch=self.arch, settings=self.settings,
                               arch_loader=self._arch_loader, latency=self._latency,
                               reinforce=self._reinforce_update(), train_loader=self._train_loader,
                               deploy_targets=deploy, export_target=self._latency_target(None))

    def _reinforce_update(self) -> ReinforceUpdate | None:
        if self.arch_update != 'reinforce':
            return None
        options = dict(self.reinforce_options)
        source = options.pop('latency', 'table')
        latency, ref = None, 65.0
        if self._latency is not None:
            ref = self.latency_config.loss.ref_latency
            device = 'cuda' if getattr(self.latency_config.hardware, 'device', None) == 'cuda' else 'cpu'
            latency = (MeasuredSubnetLatency(self._supernet, self.latency_config.dummy_input, device)
                       if source == 'measured' else self._latency.predict)
        return ReinforceUpdate(ref_latency=ref, latency=latency, **options)

    def _run(self) -> None:  # NNI's private hook (Strategy.run calls it), checked in _nni_internals
        """Train the supernet; with ``web_ui`` (or a port given to the experiment's ``run`` / ``start``), inside a
        real NNI experiment that shows the search. NNI's, Lightning's and torch's messages that say nothing to
        the user are dropped meanwhile (``_console``)."""
        started = running_experiment()
        with search_console(None if started is None else started[0]):
            self._run_search()

    def state_dict(self) -> dict:
        """NNI's one-shot state (the Lightning checkpoint's path), without its warning that a trainer saving no
        checkpoints has none."""
        with dropped(*CHECKPOINT_MESSAGE):
            return super().state_dict()

    def _run_search(self) -> None:
        if not _first_process():
            return super()._run()  # under DDP, the first process shows the search for all
        self._name_experiments()
        if self.web_ui is None:
            return super()._run()
        with self.web_ui as ui:
            module = self.oneshot_module
            module.reporter.sinks.append(ui)
            module.plots_folder = str(ui.experiment_dir / 'plots')
            try:
                super()._run()
            finally:
                module.reporter.sinks.remove(ui)
            if ui.retrain_top_k:
                self._retrain_in(ui)

    def _name_experiments(self) -> None:
        """Name the experiment's entries of ``nnictl experiment list`` after the space and the strategy (where the
        user did not), and take a port given to ``NasExperiment.run`` / ``start`` as the web UI's."""
        from .webui._from_experiment import name_experiment, requested_web_ui
        name = f'{type(self._supernet).__name__} / Proxyless'
        name_experiment(name)
        if self.web_ui is None:
            self.web_ui = requested_web_ui(name)
        elif not self.web_ui.named:
            self.web_ui.experiment_name = f'{name} (web UI)'

    def _retrain_in(self, ui: WebUI) -> None:
        """Retrain the top architectures as further trials of the web UI's experiment (``retrain_top_k``)."""
        from .webui.retrain import retrain_as_trials
        if self.oneshot_module.trainer.world_size > 1:
            _logger.warning('retrain_top_k is skipped in a distributed run: retrain the exported architectures '
                            'with their own script (see examples/retrain.py).')
            return
        assert self.arch is not None
        self.retrained = retrain_as_trials(ui, self.top_architectures(ui.retrain_top_k), self._supernet,
                                           self.model_space.evaluator, seed=self.arch.seed)

    # ----------------------------------------------------------------------------------------- export

    @property
    def latency_table(self) -> LatencyTable | None:
        """The latency table the search uses (``None`` without ``applied_hardware``)."""
        return None if self._latency is None else self._latency.table

    def top_architectures(self, k: int = 1, *, latency_target: float | None = None) -> list[Architecture]:
        """The ``k`` most probable architectures (exact), most probable first, with probabilities and latencies.

        Only architectures predicted to meet the latency target are returned (a warning says when fewer than
        ``k`` were found): ``latency_target`` when given (in the table's unit), else the strategy's.

        Raises:
            ValueError: ``latency_target`` is not a positive number, the search has no latency table, or no
                architecture can meet it.
        """
        self._check_searched()
        target = self._latency_target(latency_target)
        found = self._within(k, target)
        if target is not None and len(found) < k:
            _logger.warning('Only %d architectures within latency_target=%s %s among the most probable ones '
                            '(asked for %d).', len(found), target, self.latency_table.unit, k)
        return found

    def list_models(self, sort: bool = True, limit: int | None = 1,
                    latency_target: float | None = None) -> Iterator[RawFormatModelSpace]:
        """The top ``limit`` architectures as frozen model spaces (NNI's ``export_top_models`` calls this).

        Their models (``executable_model()``, ``formatter='instance'``) carry the supernet's weights and, unless
        ``bn_recalibration_batches=0``, BatchNorm statistics recomputed for each architecture on training data.
        With ``rerank_top_k``, the ``max(rerank_top_k, limit)`` most probable are re-ranked (:meth:`rerank`) first.
        ``latency_target`` (also as ``exp.export_top_models(top_k, latency_target=T)``, which NNI does not pass
        on: it is read from that call) overrides the strategy's for this export.

        Raises:
            TypeError: ``export_top_models`` got a keyword this strategy does not take.
        """
        assert self._supernet is not None
        extra = export_arguments()
        extra.pop('optimize_mode', None)  # NNI 3.0 warns that it has no effect
        if latency_target is None:
            latency_target = extra.pop('latency_target', None)
        if extra:
            raise TypeError(f'export_top_models got {", ".join(map(repr, sorted(extra)))}: Proxyless takes top_k, '
                            'formatter and latency_target.')
        if not self.rerank_top_k:
            architectures = self.top_architectures(limit, latency_target=latency_target)
        else:
            limit = _checks.integer('top_k', limit, low=1)
            architectures = self.rerank(self.top_architectures(max(self.rerank_top_k, limit),
                                                               latency_target=latency_target))[:limit]
        for architecture in architectures:
            yield ExportedModelSpace(self.model_space, self._supernet, architecture, self._own_statistics())

    def latency_front(self, targets: Sequence[float] | None = None, *, candidates: int = FRONT_CANDIDATES,
                      evaluate: bool = True, metric: str | None = None,
                      higher_is_better: bool | None = None) -> list[FrontPick]:
        """One architecture per latency budget, from this one search: deploy to several targets without searching
        again.

        For each budget, the pick is the most probable architecture predicted to meet it; with ``candidates=k``,
        the best by validation metric of the ``k`` most probable within it. Each pick (each candidate) is
        evaluated with the supernet's weights, as :meth:`rerank` does (one pass over the validation data, BatchNorm
        recalibrated; each architecture once, however many budgets consider it), so the front shows what each
        budget costs in accuracy. A plot of the front, ``latency_front.png``, is saved beside the search's other
        plots when the search saved them.

        Args:
            targets: budgets in the table's unit (``None``: the search's ``deploy_targets``, else 5 budgets evenly
                spaced above the fastest architecture the table predicts, up to the slowest).
            candidates: architectures compared per budget. Default 1: on a ground truth, comparing 5 by their
                supernet accuracy did not lower the mean regret (0.0058 against 0.0055), for 7-11 subnet-epochs of
                evaluation, more than a 3-epoch search costs (docs/deploy.md).
            evaluate: evaluate the picks (and candidates); ``False`` leaves ``supernet_metric`` unset and costs
                nothing, and needs ``candidates=1``.
            metric, higher_is_better: the validation metric, as for :meth:`rerank`.

        Returns:
            One :class:`~nni_proxyless.front.FrontPick` per budget, in the order of ``targets``: the budget, the pick
            (an :class:`~nni_proxyless.Architecture` with ``latency``, ``probability`` and ``supernet_metric``;
            ``None`` when nothing considered meets it) and how many were compared.

        Raises:
            ValueError: the search has no latency table (``applied_hardware``), a target is not a positive number
                or cannot be met, ``candidates`` is not an integer >= 1, or ``evaluate=False`` with more than one
                candidate.

        Example::

            for pick in strategy.latency_front([2.0, 4.0, 8.0]):
                arch = pick.architecture
                print(pick.target, arch.latency, arch.supernet_metric, dict(arch))
        """
        self._check_searched()
        table = self.latency_table
        if table is None:
            raise ValueError('latency_front needs a latency table: search with applied_hardware (e.g. '
                             "applied_hardware='flops' or 'cpu') to pick architectures per latency budget.")
        candidates = _checks.integer('candidates', candidates, low=1)
        if not evaluate and candidates > 1:
            raise ValueError(f'latency_front compares its {candidates} candidates per budget by their validation '
                             'metric: evaluate=False needs candidates=1.')
        given = self.latency_config.deploy_targets
        if not given:
            _logger.info('latency_front: this search was not given the budgets. Searching with '
                         'Proxyless(deploy_targets=[...]) trains the subnets each budget can use, and picked better '
                         'at small budgets (docs/deploy.md).')
        if targets is None:
            targets = list(given) if given else default_targets(self.arch, table, seed=self.arch.seed)
        else:
            targets = [self._latency_target(target) for target in targets]

        def rank(architectures: list[Architecture]) -> list[Architecture]:
            return self.rerank(architectures, metric=metric, higher_is_better=higher_is_better)

        front = latency_front(self._within, targets, candidates, rank if evaluate else None)
        folder = self._plots_folder()
        if folder is not None:
            _logger.info('Latency front: %s', front_plot(front, table.unit, folder / 'latency_front.png'))
        return front

    def rerank(self, architectures: list[Architecture], *, metric: str | None = None,
               higher_is_better: bool | None = None) -> list[Architecture]:
        """``architectures`` ordered by their validation metric with the supernet's weights, best first.

        Each is evaluated on one pass over the evaluator's validation data, through the supernet routed to it, in
        eval mode, with BatchNorm statistics of its own (see docs/arguments.md); the supernet is then
        routed back to the architecture it validates (its top-1 export). Ties: the more probable first. Each gets its figure as
        :attr:`~nni_proxyless.Architecture.supernet_metric`.

        Args:
            architectures: e.g. ``top_architectures(k)``.
            metric: what the evaluator module's ``validation_step`` logs, with ``higher_is_better``; both or
                neither. ``None``: what NNI's ``Classification`` (``'val_acc'``, higher is better) or
                ``Regression`` (``'val_mse'``, lower is better) reports, read from the module's ``metrics``.

        Raises:
            ValueError: the module's metric is unknown and ``metric`` was not given (the message says what to pass).

        Example::

            for arch in strategy.rerank(strategy.top_architectures(5)):
                print(dict(arch), arch.supernet_metric)
        """
        self._check_searched()
        return _rerank.rerank(self.oneshot_module, architectures, self._arch_loader(),
                              statistics=self._own_statistics(), metric=metric, higher_is_better=higher_is_better)

    def _check_searched(self) -> None:
        if self.arch is None:
            raise RuntimeError('The search has not run yet: run the experiment before exporting.')

    def _latency_target(self, latency_target: float | None) -> float | None:
        """The target for one export: ``latency_target`` when given (checked), else the strategy's, else the
        largest of its ``deploy_targets`` (nothing above it was trained)."""
        if latency_target is None:
            return None if self.latency_config is None else self.latency_config.export_target
        table = self.latency_table
        target = _checks.number('latency_target', latency_target, positive=True,
                                unit=table.unit if table is not None else '')
        if table is None:
            raise ValueError('latency_target needs applied_hardware (where latency comes from).')
        check_target_reachable(table, target)
        return target

    def _within(self, k: int, target: float | None) -> list[Architecture]:
        """The ``k`` most probable architectures within ``target`` (``None``: all), with predicted latencies."""
        table = self.latency_table
        if table is None:
            return top_k(self.arch, k)
        found = top_k(self.arch, k, accept=None if target is None else (lambda s: table.predict(s) <= target))
        for architecture in found:
            architecture.latency, architecture.latency_unit = table.predict(architecture), table.unit
        return found

    def _plots_folder(self) -> Path | None:
        """Where the search saved its plots (``None``: it saved none)."""
        plots = [c for c in self.oneshot_module.trainer.callbacks if isinstance(c, SearchPlots)]
        return plots[0].saved_in if plots else None

    def _own_statistics(self) -> Callable[[dict[str, Any]], Any] | None:
        """``statistics(sample)``: a context in which the supernet runs ``sample`` with BatchNorm statistics
        recomputed for it (``None`` with ``bn_recalibration_batches=0``)."""
        module = self.oneshot_module
        if module.batchnorm is None:
            return None
        return lambda sample: module.batchnorm.applied(module, module.arch.selections_for(sample))


def _first_process() -> bool:
    """Whether this is the first process of a (possibly distributed) run; launchers set these variables."""
    return all(int(os.environ.get(name, 0)) == 0 for name in ('NODE_RANK', 'LOCAL_RANK', 'RANK'))


def _web_ui(web_ui: Any) -> 'WebUI | None':
    if web_ui is None:
        return None
    from .webui import WebUI
    if isinstance(web_ui, WebUI):
        return web_ui
    if not _checks.is_integer(web_ui) or not 0 < web_ui < 65536:
        _checks.fail('web_ui', 'a port number from 1 to 65535, a WebUI or None', web_ui)
    return WebUI(int(web_ui))


def _first(loaders: Any) -> Any:
    return loaders[0] if isinstance(loaders, (list, tuple)) else loaders
