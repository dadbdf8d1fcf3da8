"""Show a search that runs in this process in NNI's own manager and web UI.

NNI 3.0 runs one-shot strategies in the user's process and starts no NNI manager, so ``nnictl`` and the
web UI show nothing. :class:`WebUI` starts a real NNI experiment (local training service) whose trial is a
small relay (``python -m nni_proxyless.webui._relay``). The search keeps running here and sends its metrics
to the relay over a localhost TCP connection; the relay hands them to NNI with
``nni.report_intermediate_result`` / ``nni.report_final_result``. The experiment is then an ordinary NNI
experiment: listed by ``nnictl experiment list``, reopened by ``nnictl view <id>``.

With ``retrain_top_k=k`` the experiment has ``k`` more trials, ``retrain top-1`` ... ``retrain top-k`` (the
experiment's tuner, which runs in this process, hands out the trial names in order, as the trials' parameters;
see :mod:`._tuner`): after the search,
:meth:`WebUI.next_trial` ends the current relay trial and connects the next one, and the same calls report the
retraining of one exported architecture (:mod:`.retrain`), so the web UI compares the retrained architectures
side by side.

Modules: :mod:`.ui` (the class), :mod:`._protocol` (the messages, shared with the relay), :mod:`._connection`
(this process's end of the link), :mod:`._relay` (the trial), :mod:`._experiment` (the experiment's
configuration), :mod:`._tuner` (the experiment's tuner), :mod:`._processes` (starting and stopping processes),
:mod:`.retrain` (retraining trials).
"""

from .ui import WebUI, WebUIError

__all__ = ['WebUI', 'WebUIError']
