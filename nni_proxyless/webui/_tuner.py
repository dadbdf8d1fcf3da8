"""The web UI experiment's tuner, run in this process: it hands out the trials' names in order, one per trial.

NNI's manager normally starts its tuner as a process of its own (``python -m nni``) and gives it 10 seconds to
connect back, a limit written into the manager. On a loaded machine that process can still be importing NNI
when the 10 seconds are up, and the manager gives up (``Tuner did not connect in 10 seconds``, with an empty
``dispatcher.log``). So the manager is told instead that its tuner connects by itself (NNI's tuner command
channel, as NNI's own NAS experiments run their strategy), and this process, which has NNI loaded already,
connects as soon as the manager has started. It does what the experiment's configured ``GridSearch`` tuner would
do on its one-choice search space: the choice's values in order, then "no more trials".
"""
from __future__ import annotations

import threading

from nni.common.serializer import dump

from .._nni_internals import CommandType, Initialize, RequestTrialJobs, TunerCommandChannel, send_command

__all__ = ['InProcessTuner', 'channel_url']


def channel_url(port: int) -> str:
    """Where NNI's manager on ``port`` waits for its tuner."""
    return f'ws://localhost:{port}/tuner'


class InProcessTuner:
    """The tuner of one NNI manager: the values of the search space's single choice, in order, as trials.

    Args:
        port: the manager's port.
    """

    def __init__(self, port: int) -> None:
        self._channel = TunerCommandChannel(channel_url(port))
        self._channel.on_initialize(self._initialize)
        self._channel.on_request_trial_jobs(self._hand_out)
        self._parameter = ''
        self._values: list = []
        self._sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._channel.listen, kwargs={'stop_event': self._stop},
                                        name='nni-webui-tuner', daemon=True)

    def connect(self) -> None:
        """Connect to the manager and answer it from a thread of this process until it terminates the tuner."""
        self._channel.connect()
        self._thread.start()

    def close(self) -> None:
        """Disconnect (after the manager has stopped, which ends the thread: it sends the tuner a Terminate)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
        self._channel.disconnect()

    def _initialize(self, command: Initialize) -> None:
        ((self._parameter, choice),) = command.search_space.items()
        self._values = list(choice['_value'])
        self._channel.send_initialized()

    def _hand_out(self, command: RequestTrialJobs) -> None:
        for _ in range(command.count):
            if self._sent == len(self._values):
                self._channel.send_no_more_trial_jobs()
                return
            # what NNI's own tuner process sends; the channel's send_trial would add NNI's version_dump, which
            # imports torch, Lightning and TensorFlow into this process if they are not loaded yet (seconds)
            trial = {'parameter_id': self._sent, 'parameter_source': 'algorithm', 'parameter_index': 0,
                     'parameters': {self._parameter: self._values[self._sent]}}
            send_command(self._channel, CommandType.NewTrialJob, dump(trial))
            self._sent += 1
