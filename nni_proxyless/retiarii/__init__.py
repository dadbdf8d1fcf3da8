"""NNI 2.x's Retiarii API (``nni.retiarii``) for NNI 3.0, as a thin layer over ``nni.nas``.

NNI 3.0 removed ``nni.retiarii``. A 2.x one-shot script runs on NNI 3.0 with the ``Proxyless`` strategy by
changing its import lines only::

    import nni_proxyless.retiarii.nn.pytorch as nn                       # was: nni.retiarii.nn.pytorch
    import nni_proxyless.retiarii.evaluator.pytorch.lightning as pl      # was: nni.retiarii.evaluator...
    import nni_proxyless.retiarii.strategy as strategy                   # was: nni.retiarii.strategy
    from nni_proxyless.retiarii import model_wrapper                     # was: nni.retiarii
    from nni_proxyless.retiarii.experiment.pytorch import RetiariiExperiment, RetiariiExeConfig

``fixed_arch`` (a dict or a JSON file, over NNI 3.0's ``model_context``), ``basic_unit`` (a marker, nothing to
do for one-shot search) and ``nni_proxyless.retiarii.oneshot.pytorch.ProxylessTrainer`` keep their 2.x use.
2.x features with no NNI 3.0 equivalent (``serialize``, mutators, graph execution engines,
``export_top_models(formatter='code')``) raise :class:`RetiariiMigrationError` naming the replacement. See
``docs/migrating.md``.
"""

from ._errors import RetiariiMigrationError
from .fixed import fixed_arch
from .serializer import basic_unit, is_model_wrapped, model_wrapper, serialize, serialize_cls

__all__ = ['model_wrapper', 'is_model_wrapped', 'fixed_arch', 'serialize', 'serialize_cls', 'basic_unit',
           'RetiariiMigrationError']
