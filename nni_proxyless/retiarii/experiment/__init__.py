"""``nni_proxyless.retiarii.experiment``: NNI 2.x's ``nni.retiarii.experiment`` (see :mod:`.pytorch`)."""

from .config import RetiariiExeConfig
from .pytorch import RetiariiExperiment

__all__ = ['RetiariiExperiment', 'RetiariiExeConfig']
