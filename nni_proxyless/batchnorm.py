"""Where :class:`~nni_proxyless.callbacks.BatchNormRecalibration` was documented first; import it (and
``recalibrate``) from :mod:`nni_proxyless.callbacks.batchnorm`."""

from .callbacks.batchnorm import BatchNormRecalibration, recalibrate

__all__ = ['BatchNormRecalibration', 'recalibrate']
