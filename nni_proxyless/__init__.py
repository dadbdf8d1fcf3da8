"""nni-proxyless: ProxylessNAS as a strategy for NNI 3.0.

Example::

    from nni.nas.experiment import NasExperiment
    from nni_proxyless import Proxyless

    exp = NasExperiment(model_space, evaluator, Proxyless(seed=0))
    exp.run()
    print(exp.export_top_models(top_k=3, formatter='dict'))
"""

from . import _compat  # noqa: F401  (before NNI is imported)
from .arch import ArchParameters
from .export import Architecture
from .strategy import Proxyless

__all__ = ['Proxyless', 'Architecture', 'ArchParameters']
__version__ = '0.1.0'
