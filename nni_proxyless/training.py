"""The Lightning module of a Proxyless search: weight steps, architecture steps, argmax validation.

It wraps the evaluator's own Lightning module (which defines the loss, the weight optimiser and the metrics)
and drives it by hand:

* weight step, on every training batch: one sampled path per label (with ``deploy_targets``, drawn within each
  budget in turn, :mod:`nni_proxyless._budget_paths`); only those candidates run, forward and
  backward; the user's optimiser steps (unsampled candidates have no gradient, so it leaves them alone; a
  value choice's max-size weight has a full-size gradient, zero outside the slice, so momentum and weight decay
  still move its unused channels);
* architecture step, every ``arch_update_every`` weight steps from ``warmup_epochs`` on, on a batch of the
  validation data: binary gates on the sampled paths, gradients for the architecture logits only (no weight
  gradient is computed), Adam with the official settings, then the ``two``-mode rescale;
* validation, every epoch, on the most probable architecture (within the export's latency limit, if any: the
  top-1 export at that moment; with BatchNorm statistics of its own, see
  :mod:`nni_proxyless.callbacks.batchnorm`), reported to NNI with the search's figures
  (:class:`~nni_proxyless.callbacks.MetricReporter`).

One Lightning module, whose hooks share the step counter, the routing and the wrapped module; everything
else around the loop is a callback of :mod:`nni_proxyless.callbacks` (docs/design.md, "The training
module").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Sequence

import torch
from pytorch_lightning import Callback

from . import _checks
from ._arch_batches import ArchBatches
from ._budget_paths import BudgetPaths
from ._nni_internals import BaseOneShotLightningModule
from .arch import ArchParameters, BinaryMode, Selection
from .export import top_k
from ._distributed import allow_unused_parameters
from ._precision import check_precision, gradient_scaler, scaled_gradients, scaled_step
from .callbacks import (ArchitectureLogger, BatchNormRecalibration, ChannelsLast, ConvergenceCheck, DummyInputCheck,
                        FiniteLossCheck, MetricReporter, RandomStateKeeper, SearchPlots)
from .callbacks.convergence import arc_learning_rate
from .reinforce import ReinforceUpdate
from .latency.loss import LatencyObjective
from .latency.table import LatencyTable
from .ops import MixedOp, check_shapes_on_first_batch, check_space_on_first_batch, check_widening_on_first_batch

__all__ = ['SearchSettings', 'ProxylessModule']


@dataclass(frozen=True)
class SearchSettings:
    """The validated hyper-parameters of a search (see :class:`~nni_proxyless.Proxyless` for their meaning)."""

    arc_learning_rate: float | Literal['auto'] = 'auto'
    warmup_epochs: int = 0
    arch_update_every: int = 5
    binary_mode: BinaryMode = 'two'
    gradient_clip_val: float | None = None
    bn_recalibration_batches: int = 20
    channels_last: bool = False

    def __post_init__(self) -> None:
        rate = self.arc_learning_rate
        if rate != 'auto' and not (_checks.is_number(rate) and rate > 0):
            _checks.fail('arc_learning_rate', "a positive number or 'auto'", rate)
        checked = {'arc_learning_rate': rate if rate == 'auto' else float(rate),
                   'warmup_epochs': _checks.integer('warmup_epochs', self.warmup_epochs, low=0),
                   'arch_update_every': _checks.integer('arch_update_every', self.arch_update_every, low=1),
                   'binary_mode': _checks.one_of('binary_mode', self.binary_mode, ('two', 'full_v2')),
                   'gradient_clip_val': _checks.number('gradient_clip_val', self.gradient_clip_val, positive=True,
                                                       optional=True),
                   'bn_recalibration_batches': _checks.integer('bn_recalibration_batches (0: off)',
                                                               self.bn_recalibration_batches, low=0),
                   'channels_last': _checks.one_of('channels_last', self.channels_last, (True, False))}
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # plain int / float, whatever numeric type was given


class ProxylessModule(BaseOneShotLightningModule):
    """Lightning module that searches the supernet held by ``training_module``.

    Args:
        training_module: the evaluator's Lightning module (its ``training_step`` gives the loss).
        arch: the architecture logits of the supernet's mixed ops.
        settings: search hyper-parameters.
        arch_loader: returns the data loader whose batches train the architecture.
        train_loader: returns the training data loader, whose first batches recalibrate the batch-norm statistics
            of the architecture validated (``None``: no recalibration).
        latency: optional latency objective: adds the latency loss to the architecture step and the latency
            figures to the logs and reports.
        reinforce: train the architecture with REINFORCE instead of binary gates (the latency, if any, is then
            part of the reward, not a loss).
        deploy_targets: latency budgets (in the table's unit, with ``latency``) that the weight steps' paths are
            drawn within in turn (:class:`~nni_proxyless._budget_paths.BudgetPaths`); empty: from the whole
            distribution.
        export_target: the latency limit of the search's exports (``None``: none): validation runs the most
            probable architecture within it, the search's top-1 export at that moment.

    Attributes:
        batchnorm: the batch-norm recalibration of validations and exports (``None`` when it is off).
        reporter: adds the search's figures to what the evaluator's module reports to NNI, and sends the reports
            to NNI and to its ``sinks`` (the web UI); see :class:`~nni_proxyless.callbacks.MetricReporter`.
        plots_folder: where :class:`~nni_proxyless.callbacks.SearchPlots` saves its PNG files and
            :class:`~nni_proxyless.callbacks.ArchitectureLogger` the architecture of each epoch.
    """

    def __init__(self, training_module, *, arch: ArchParameters, settings: SearchSettings,
                 arch_loader: Callable[[], Any], latency: LatencyObjective | None = None,
                 reinforce: ReinforceUpdate | None = None, train_loader: Callable[[], Any] | None = None,
                 deploy_targets: Sequence[float] = (), export_target: float | None = None):
        super().__init__(training_module)
        self.arch = arch
        self.settings = settings
        self.latency = latency
        self.reinforce = reinforce
        self.step_count = 0
        self.reporter = MetricReporter(figures=self.search_figures)
        self.plots_folder: str | None = None
        self._arch_batches = ArchBatches(arch_loader, lambda: self.arch.seed)
        self._ops: list[MixedOp] = []
        self.batchnorm = None
        if settings.bn_recalibration_batches and train_loader is not None:
            self.batchnorm = BatchNormRecalibration(batches=settings.bn_recalibration_batches,
                                                    train_loader=train_loader, seed=lambda: self.arch.seed)
        self._check_finite = FiniteLossCheck()
        if deploy_targets and latency is None:
            raise ValueError('deploy_targets needs a latency table (applied_hardware).')
        self.budget_paths = BudgetPaths(deploy_targets) if deploy_targets else None
        self.export_target = export_target

    # ------------------------------------------------------------------------------------------- set-up

    def set_model(self, model: torch.nn.Module) -> None:
        super().set_model(model)
        self._ops = [m for m in model.modules() if isinstance(m, MixedOp)]

    def setup(self, stage: str) -> None:
        """Before DDP wraps the model: allow unused parameters; take rank 0's seed and latency table."""
        check_precision(self.trainer)
        allow_unused_parameters(self.trainer.strategy)
        self.arch.seed = self.trainer.strategy.broadcast(self.arch.seed, src=0)
        if self.latency is not None:
            self.latency.table = self.trainer.strategy.broadcast(self.latency.table, src=0)
        return super().setup(stage)

    def on_fit_start(self) -> None:
        check_shapes_on_first_batch(self._ops)
        check_space_on_first_batch(self.training_module.model, self.arch.routing)  # before the widening check
        check_widening_on_first_batch(self.training_module.model, self.arch.routing)
        if self.budget_paths is not None:
            self.budget_paths.check(self.arch, self.latency.table)
        return super().on_fit_start()

    def configure_architecture_optimizers(self) -> torch.optim.Optimizer:
        rate = self.settings.arc_learning_rate
        if rate == 'auto':  # fitted to the trainer's plan (a given rate needs no trainer)
            rate = arc_learning_rate(self.settings, self.trainer)
        return torch.optim.Adam(self.arch.parameters(), lr=rate, betas=(0.0, 0.999), eps=1e-8, weight_decay=0.0)

    def configure_callbacks(self) -> list[Callback]:
        callbacks = [ArchitectureLogger(self.plots_folder), RandomStateKeeper(), SearchPlots(self.plots_folder),
                     ConvergenceCheck(), self._check_finite]
        callbacks += [ChannelsLast()] if self.settings.channels_last else []
        callbacks += [DummyInputCheck(self.latency.table.dummy_input)] if self.latency is not None else []
        callbacks.append(self.reporter)
        return callbacks if self.batchnorm is None else [self.batchnorm, *callbacks]

    def route(self, selections: dict[str, Selection]) -> None:
        """Make every mixed op run what its labels' selections say (the supernet's one routing)."""
        self.arch.routing.set(selections)

    def training_forward(self, batch: Any) -> None:
        """The evaluator's ``training_step`` on a training batch as a forward pass only: no gradient, no logs."""
        batch = self.trainer.strategy.batch_to_device(batch, self.device)
        with torch.no_grad(), self._muted_logging():
            self.training_module.training_step(batch, -1)

    # -------------------------------------------------------------------------------------------- steps

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        step = self.step_count
        self.route(self.weight_path(step))
        output = self.training_module.training_step(batch, batch_idx)
        loss = _loss_of(output, 'weight step')
        self._check_finite(loss, 'weight step')
        self.advance_optimization(loss, batch_idx)  # clipping: on_before_optimizer_step
        self.advance_lr_schedulers(batch_idx)
        self.step_count += 1
        if self._architecture_due():
            self.architecture_step(step)
        return output

    def weight_path(self, step: int) -> dict[str, Selection]:
        """The path weight step ``step`` trains: drawn from the distribution (within a deployment budget, when
        the search has them)."""
        if self.budget_paths is None:
            return self.arch.sample(step)
        return self.budget_paths.draw(self.arch, self.latency.table, step)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip the weight gradients; Lightning calls this after taking a mixed-precision loss scale out of them."""
        if self.settings.gradient_clip_val is not None:
            self.training_module.configure_gradient_clipping(optimizer, self.settings.gradient_clip_val, None)

    def _architecture_due(self) -> bool:
        return (self.trainer.current_epoch >= self.settings.warmup_epochs
                and self.step_count % self.settings.arch_update_every == 0)

    def architecture_step(self, step: int) -> None:
        """One update of the architecture logits on a validation batch (docs/design.md, "Architecture step")."""
        batch = self.trainer.strategy.batch_to_device(self._arch_batches.next())
        if self.reinforce is not None:
            loss, pairs = self._policy_gradient_loss(batch, step), {}
        else:
            loss, pairs = self._binary_gate_loss(batch, step)
        logits = list(self.arch.parameters())
        scaler = gradient_scaler(self.trainer)  # '16-mixed': the weight step's loss scale (see _precision.py)
        grads = scaled_gradients(loss, logits, scaler)
        before = self.arch.snapshot(pairs)
        for logit, grad in zip(logits, self._mean_over_processes(logits, grads)):
            logit.grad = grad
        optimizer = self._arch_optimizer()
        scaled_step(optimizer, scaler)
        optimizer.zero_grad(set_to_none=True)
        self.arch.rescale(pairs, before)
        self.log('arch_loss', loss.detach(), on_step=False, on_epoch=True)

    def _mean_over_processes(self, logits: list[torch.Tensor], grads: tuple[torch.Tensor | None, ...]
                             ) -> list[torch.Tensor | None]:
        """The gradients averaged over processes (in one reduction), a missing one counting as zero."""
        if self.trainer.world_size <= 1:
            return list(grads)
        flat = torch.cat([(torch.zeros_like(logit) if grad is None else grad).flatten()
                          for logit, grad in zip(logits, grads)])
        flat = self.trainer.strategy.reduce(flat, reduce_op='mean')
        return [part.view_as(logit) for part, logit in zip(flat.split([p.numel() for p in logits]), logits)]

    def _binary_gate_loss(self, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, tuple[int, ...]]]:
        """Task loss (plus latency loss) on gated sampled paths, and the pairs to rescale after the step."""
        selections = self.arch.sample_for_update(step, self.settings.binary_mode)
        self.route(selections)
        with self._muted_logging():
            loss = _loss_of(self.training_module.training_step(batch, -1), 'architecture step')
        self._check_finite(loss, 'architecture step')
        if self.latency is not None:
            loss = self.latency(loss, selections, self.arch)
        return loss, ArchParameters.pairs_of(selections)

    def _policy_gradient_loss(self, batch: Any, step: int) -> torch.Tensor:
        """REINFORCE: rewards of whole sampled architectures on one batch (see :mod:`nni_proxyless.reinforce`)."""
        assert self.reinforce is not None
        rewarded = []
        model = self.training_module.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for k in range(self.reinforce.samples):
                    selections = self.arch.sample(step, phase=2 + k)
                    self.route(selections)
                    sample = self.arch.sample_of(selections)
                    accuracy = self.reinforce.metric(self.training_module(self.reinforce.input_of(batch)), batch)
                    rewarded.append((selections, sample, self.reinforce.reward(accuracy, sample)))
        finally:
            model.train(was_training)
        self.log('reinforce_reward', sum(r for _, _, r in rewarded) / len(rewarded), on_step=False, on_epoch=True)
        return self.reinforce.loss(self.arch, rewarded)

    def _arch_optimizer(self) -> torch.optim.Optimizer:
        # The raw optimiser: stepping Lightning's wrapper would count architecture steps in global_step.
        return self.architecture_optimizers().optimizer

    def _muted_logging(self) -> contextlib.AbstractContextManager[None]:
        """The architecture step reuses the user's training_step; keep its logs out of the training curves."""
        return self.logging_to(lambda *args, **kwargs: None)

    @contextlib.contextmanager
    def logging_to(self, log: Callable[..., None]) -> Iterator[None]:
        """Inside the block, the evaluator's module's ``self.log(name, value, ...)`` calls go to ``log``."""
        self.training_module.log = log
        try:
            yield
        finally:
            self.training_module.log = self.log

    # --------------------------------------------------------------------------------------- validation

    def validated_selections(self) -> dict[str, Selection]:
        """The architecture validation runs: the search's top-1 export at this moment, i.e. the most probable
        architecture (within ``export_target``, when the search has one and a latency table)."""
        if self.export_target is None or self.latency is None:
            return self.arch.argmax_selections()
        table, target = self.latency.table, self.export_target
        found = top_k(self.arch, 1, accept=lambda sample: table.predict(sample) <= target)
        return self.arch.selections_for(found[0]) if found else self.arch.argmax_selections()

    def on_validation_epoch_start(self) -> None:
        self.route(self.validated_selections())
        return self.training_module.on_validation_epoch_start()

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        return self.training_module.validation_step(batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        return self.training_module.on_validation_epoch_end()  # it reports to NNI: see self.reporter

    def on_train_end(self) -> None:
        self.route(self.validated_selections())  # leave the supernet on the path it exports first
        return self.training_module.on_train_end()

    @property
    def reports(self) -> list[dict[str, Any]]:
        """The per-epoch reports so far (validation metric as ``'default'``, entropy, latencies)."""
        return self.reporter.reports

    def search_figures(self) -> dict[str, float]:
        """Per-epoch figures of the search: architecture entropy (nats) and, with a table, latencies."""
        figures = {'entropy': self.arch.entropy()}
        if self.latency is not None:
            figures.update(self.latency.figures(self.arch))
        return figures

    # ------------------------------------------------------------------------------------------- resume

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep what the logits and optimiser states do not say: the sampler's step and seed, the table."""
        checkpoint['proxyless'] = {'step_count': self.step_count, 'seed': self.arch.seed,
                                   'arch_batches': self._arch_batches.consumed,
                                   'latency_table': None if self.latency is None else self.latency.table.to_json()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get('proxyless')
        if state is None:
            raise ValueError('This checkpoint was not written by a Proxyless search (no "proxyless" entry).')
        self.step_count, self.arch.seed = int(state['step_count']), int(state['seed'])
        self._arch_batches.resume_at(int(state['arch_batches']))
        if self.latency is not None and state.get('latency_table') is not None:
            # the table the search started with, so that a resumed search prices exactly as before
            self.latency.table = LatencyTable.from_json(state['latency_table'], source='the checkpoint')


def _loss_of(output: Any, where: str) -> torch.Tensor:
    loss = output['loss'] if isinstance(output, dict) else output
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f'The evaluator\'s training_step must return a loss tensor (or a dict with "loss"), '
                        f'got {type(loss).__name__} in the {where}.')
    return loss
