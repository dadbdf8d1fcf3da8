"""Reports to NNI and to the web UI: one Lightning callback for the search and for retraining.

An NNI evaluator's Lightning module reports its validation metric itself (``nni.report_intermediate_result``
every epoch, ``nni.report_final_result`` at the end), and NNI hands each report to the current trial command
channel. While a trainer runs, :class:`MetricReporter` puts its own channel in front of that one: every report
gets figures added (a search's entropy and latencies, a retrained architecture's probability), is recorded,
goes to the sinks (a running :class:`~nni_proxyless.webui.WebUI`), and on to NNI's channel (the experiment's, so
``export_top_models`` and NNI's tuner see the same figures). The search and the web UI's retraining trials
both report this way.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import nni
from pytorch_lightning import Callback, LightningModule, Trainer
from nni.typehint import ParameterRecord

from .._nni_internals import (TrialCommandChannel, get_default_trial_command_channel,
                              set_default_trial_command_channel)

__all__ = ['MetricReporter']


class MetricReporter(Callback):
    """Adds figures to what the module reports to NNI, keeps the reports, and sends them to NNI and the sinks.

    Args:
        figures: figures added to every report: a dict, or a function called at each report (e.g. the search's
            entropy and expected latency at that epoch).
        sinks: objects with ``report_intermediate(dict)`` and ``report_final(dict)`` that receive every report
            (e.g. a running :class:`~nni_proxyless.webui.WebUI`); more can be appended before the trainer runs.
        forward: also send the reports on to NNI's channel (the experiment running the trainer). ``False`` for a
            trainer whose reports belong to the sinks alone.
        parameter: the trial's parameter while the trainer runs (NNI's evaluators report only when the trial has
            one); ``None`` keeps NNI's.

    Attributes:
        reports: the intermediate reports so far (kept in checkpoints).
        finals: the final reports.

    Example::

        reporter = MetricReporter(figures={'probability': 0.4}, sinks=[ui], forward=False, parameter=arch)
        trainer = Trainer(max_epochs=3, callbacks=[reporter])   # NNI's evaluators report: the UI gets them
    """

    def __init__(self, *, figures: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
                 sinks: list[Any] | None = None, forward: bool = True, parameter: dict[str, Any] | None = None):
        self.figures = figures
        self.sinks = list(sinks or [])
        self.forward = forward
        self.parameter = parameter
        self.reports: list[dict[str, Any]] = []
        self.finals: list[dict[str, Any]] = []
        self._trainer: Trainer | None = None
        self._channel: _ReportingChannel | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Put the reporting channel in front of NNI's for as long as the trainer runs."""
        self._trainer = trainer
        if self._channel is None:
            self._channel = _ReportingChannel(self, get_default_trial_command_channel())
            set_default_trial_command_channel(self._channel)
        if self.parameter is not None:
            nni.get_next_parameter()  # the trial's current parameter becomes self.parameter

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def state_dict(self) -> dict[str, Any]:
        return {'reports': list(self.reports), 'finals': list(self.finals)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.reports, self.finals = list(state_dict['reports']), list(state_dict['finals'])

    def report(self, kind: Literal['PERIODICAL', 'FINAL'], metric: Any) -> dict[str, Any] | None:
        """Record one report with the figures added and send it to the sinks; ``None`` while sanity checking."""
        if self._trainer is not None and self._trainer.sanity_checking:
            return None
        report = dict(metric) if isinstance(metric, dict) else {'default': metric}
        report.update(self.figures() if callable(self.figures) else self.figures or {})
        (self.finals if kind == 'FINAL' else self.reports).append(report)
        for sink in self.sinks:
            (sink.report_final if kind == 'FINAL' else sink.report_intermediate)(report)
        return report

    def _restore(self) -> None:
        if self._channel is not None:
            set_default_trial_command_channel(self._channel.previous)
            self._channel = None


class _ReportingChannel(TrialCommandChannel):
    """NNI's trial command channel while a :class:`MetricReporter` runs: reports go through the reporter."""

    def __init__(self, reporter: MetricReporter, previous: TrialCommandChannel):
        self.reporter, self.previous = reporter, previous

    def receive_parameter(self) -> ParameterRecord | None:
        if self.reporter.parameter is not None:
            return ParameterRecord(parameter_id=0, parameters=self.reporter.parameter)
        return self.previous.receive_parameter()

    def send_metric(self, type: Literal['PERIODICAL', 'FINAL'], parameter_id: int | None,  # noqa: A002
                    trial_job_id: str, sequence: int, value: Any) -> None:
        report = self.reporter.report(type, value)
        if report is not None and self.reporter.forward:
            self.previous.send_metric(type=type, parameter_id=parameter_id, trial_job_id=trial_job_id,
                                      sequence=sequence, value=report)
