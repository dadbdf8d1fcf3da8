"""``nni_proxyless.retiarii.evaluator``: NNI 2.x's ``nni.retiarii.evaluator``, i.e. NNI 3.0's ``nni.nas.evaluator``."""

from nni.nas.evaluator import FunctionalEvaluator

__all__ = ['FunctionalEvaluator']
