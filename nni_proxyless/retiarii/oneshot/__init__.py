"""NNI 2.x's ``nni.retiarii.oneshot``: the one-shot trainers; ``ProxylessTrainer`` is in :mod:`.pytorch`."""
