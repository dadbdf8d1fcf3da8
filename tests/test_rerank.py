"""Re-ranking the top-k by the supernet: metrics against subnets evaluated by hand, order, routing, arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nni.nas.evaluator.pytorch import Regression
from nni_proxyless import Proxyless, _rerank

from conftest import ConvSpace, digits_accuracy, digits_evaluator, run_search


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
    """A 1-epoch search (BatchNorm statistics recomputed from 4 training batches), its 4 most probable
    architectures, and the accuracy of each exported instance evaluated by hand."""
    torch.manual_seed(0)
    strategy = Proxyless(seed=0, bn_recalibration_batches=4)
    exp = run_search(ConvSpace(batchnorm=True), strategy, digits_evaluator(epochs=1),
                     tmp_path_factory.mktemp('search'))
    top = strategy.top_architectures(4)
    instances = exp.export_top_models(top_k=4, formatter='instance')  # by probability: rerank_top_k=0
    return exp, strategy, top, [digits_accuracy(instance) for instance in instances]


def test_rerank_metric_is_the_exported_instance_accuracy(searched):
    """``rerank`` gives each architecture the validation accuracy of its exported instance (recalibrated
    BatchNorm statistics, eval mode) computed by hand with argmax, to 1e-6."""
    _, strategy, top, by_hand = searched
    reranked = strategy.rerank([type(a)(a, a.probability) for a in top])
    metric_of = {tuple(sorted(a.items())): a.supernet_metric for a in reranked}
    assert len(metric_of) == 4 and all(isinstance(m, float) for m in metric_of.values())
    assert [metric_of[tuple(sorted(a.items()))] for a in top] == pytest.approx(by_hand, abs=1e-6)
    assert 'supernet_metric=' in repr(reranked[0])


def test_export_with_rerank_top_k_orders_by_accuracy(searched, monkeypatch):
    """With ``rerank_top_k=4``, ``export_top_models(top_k=2)`` is the 4 most probable sorted by their
    hand-computed accuracy (ties: the more probable first), cut to 2. The logits are negated first, so that the
    probability order runs against the accuracy the search saw and the re-ranking has something to change."""
    exp, strategy, _, _ = searched
    with torch.no_grad():
        for logit in strategy.arch.parameters():
            logit.neg_()
    try:
        top = strategy.top_architectures(4)
        by_hand = [digits_accuracy(instance) for instance in exp.export_top_models(top_k=4, formatter='instance')]
        assert len(set(by_hand)) == 4, 'the property needs distinct accuracies (exact ties are broken by noise)'
        monkeypatch.setattr(strategy, 'rerank_top_k', 4)
        exported = exp.export_top_models(top_k=2, formatter='dict')
    finally:
        with torch.no_grad():
            for logit in strategy.arch.parameters():
                logit.neg_()
    expected = [a for _, _, a in sorted(zip(by_hand, range(4), top), key=lambda t: (-t[0], t[1]))][:2]
    assert expected != top[:2], 'this search must rank differently by accuracy for the test to say anything'
    assert [dict(a) for a in exported] == [dict(a) for a in expected]
    assert [a.supernet_metric for a in exported] == pytest.approx(sorted(by_hand, reverse=True)[:2], abs=1e-6)


def test_equal_metrics_keep_the_more_probable_first(searched, monkeypatch):
    """Architectures with equal metrics come in order of probability, whatever order they were given in."""
    _, strategy, top, _ = searched
    monkeypatch.setattr(_rerank, 'validation_metric', lambda *args, **kwargs: 0.5)
    assert [dict(a) for a in strategy.rerank(list(reversed(top)))] == [dict(a) for a in top]


def test_rerank_leaves_the_supernet_on_the_argmax(searched):
    """After ``rerank`` (started on another routing) the supernet runs the most probable architecture, with the
    search's BatchNorm statistics untouched."""
    _, strategy, top, _ = searched
    module = strategy.oneshot_module
    module.route(module.arch.selections_for(top[-1]))
    statistics = {name: buffer.clone() for name, buffer in module.model.named_buffers()}
    strategy.rerank(top)
    argmax = module.arch.argmax_selections()
    assert all(module.arch.routing[label].active == argmax[label].active for label in argmax)
    assert all(torch.equal(buffer, statistics[name]) for name, buffer in module.model.named_buffers())


def test_metric_and_direction_come_from_nni_evaluators():
    """Classification reports 'val_acc' (higher is better), Regression 'val_mse' (lower is better); a module
    without torchmetrics metrics is refused with what to pass."""
    assert _rerank.reported_metric(digits_evaluator().module) == ('val_acc', True)
    assert _rerank.reported_metric(Regression().module) == ('val_mse', False)
    with pytest.raises(ValueError, match=r"metric='val_<name>', higher_is_better=True or False"):
        _rerank.reported_metric(nn.Linear(2, 2))


@pytest.mark.parametrize('value', [-1, 1.5, True, None])
def test_rerank_top_k_must_be_a_non_negative_integer(value):
    """``rerank_top_k`` is refused unless an integer >= 0, with the value named."""
    with pytest.raises(ValueError, match=rf'^rerank_top_k \(0: off\) must be an integer >= 0, got {value!r}\.$'):
        Proxyless(rerank_top_k=value)
