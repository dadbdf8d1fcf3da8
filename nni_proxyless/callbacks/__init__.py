"""What runs around a search's loop, one Lightning callback per behaviour, each with its own state.

:class:`~nni_proxyless.training.ProxylessModule` adds them itself (``configure_callbacks``), in this order:

* :class:`BatchNormRecalibration` (``batchnorm.py``): BatchNorm statistics of the validated architecture, recomputed
  on training batches before each validation (first, so that it routes before validation);
* :class:`ArchitectureLogger` (``architecture_log.py``): each epoch's line, progress bar, scalars and the
  architecture file in the run's folder;
* :class:`RandomStateKeeper` (``random_state.py``): the global random states in checkpoints;
* :class:`SearchPlots` (``plots.py``): the PNG plots at the end;
* :class:`ConvergenceCheck` (``convergence.py``): the default architecture learning rate, the few-steps warning at
  the start and the barely-moved warning at the end;
* :class:`FiniteLossCheck` (``finite_loss.py``): stops a search whose loss is NaN or infinite;
* :class:`ChannelsLast` (``channels_last.py``): NHWC training, with ``channels_last=True``;
* :class:`DummyInputCheck` (``dummy_input.py``): the latency table's dummy input against the data, with a table;
* :class:`MetricReporter` (``reports.py``): the search's figures in NNI's reports and the web UI.

:class:`StepLogger` (``step_logger.py``) is NNI 2.x's step log, added by
:class:`~nni_proxyless.trainer.ProxylessTrainer`.
"""

from .architecture_log import ArchitectureLogger
from .batchnorm import BatchNormRecalibration
from .channels_last import ChannelsLast
from .convergence import ConvergenceCheck
from .dummy_input import DummyInputCheck
from .finite_loss import FiniteLossCheck
from .plots import SearchPlots
from .random_state import RandomStateKeeper
from .reports import MetricReporter
from .step_logger import StepLogger

__all__ = ['ArchitectureLogger', 'BatchNormRecalibration', 'ChannelsLast', 'ConvergenceCheck', 'DummyInputCheck',
           'FiniteLossCheck', 'MetricReporter', 'RandomStateKeeper', 'SearchPlots', 'StepLogger']
