"""Where :class:`~nni_proxyless.callbacks.ChannelsLast` was documented first; import it from
:mod:`nni_proxyless.callbacks`."""

from .callbacks.channels_last import ChannelsLast

__all__ = ['ChannelsLast']
