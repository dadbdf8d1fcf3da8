"""``nni_proxyless.retiarii.nn``: NNI 2.x's ``nni.retiarii.nn`` (only ``pytorch`` exists)."""

__all__: list[str] = []
