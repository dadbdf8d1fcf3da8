"""NNI 2.x's Retiarii API (``nni.retiarii``) for NNI 3.0, as a thin layer over ``nni.nas``.

NNI 3.0 removed ``nni.retiarii``. A 2.x one-shot script runs on NNI 3.0 with the ``Proxyless`` strategy by
changing its import lines only::

    import nni_proxyless.retiarii.nn.pytorch as nn                       # was: nni.retiarii.nn.pytorch
    import nni_proxyless.retiarii.evaluator.pytorch.lightning as pl      # was: nni.retiarii.evaluator...
    import nni_proxyless.retiarii.strategy as strategy                   # was: nni.retiarii.strategy
    from nni_proxyless.retiarii import model_wrapper                     # was: nni.retiarii
    from nni_proxyless.retiarii.experiment.pytorch import RetiariiExperiment, RetiariiExeConfig

2.x features with no NNI 3.0 equivalent (``fixed_arch``, ``serialize``, ``basic_unit``, mutators, graph
execution engines, ``export_top_models(formatter='code')``) raise :class:`RetiariiMigrationError` naming the
replacement. See ``docs/migrating.md``.
"""

from ._errors import RetiariiMigrationError, removed
from .serializer import basic_unit, is_model_wrapped, model_wrapper, serialize, serialize_cls

__all__ = ['model_wrapper', 'is_model_wrapped', 'fixed_arch', 'serialize', 'serialize_cls', 'basic_unit',
           'RetiariiMigrationError']

fixed_arch = removed('nni.retiarii.fixed_arch',
                     'model_space.freeze(arch), or `with nni.nas.space.model_context(arch): model = Net()` '
                     '(arch: a dict from export_top_models(formatter="dict"); for a JSON file, json.load it first)')
