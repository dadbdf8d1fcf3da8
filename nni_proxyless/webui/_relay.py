"""The relay trial of :class:`nni_proxyless.webui.WebUI` (run as ``python -m nni_proxyless.webui._relay``).

NNI's local training service launches this module for each trial of the experiment. It asks NNI for its
parameters (the trial's name: ``search``, ``retrain top-1``, ...), reads its token from the file named on its
command line, connects to the user's process on ``127.0.0.1:<port>``, introduces itself, then reports what it
is sent to NNI (see :mod:`._protocol`).

If the connection closes without ``done`` the user's process has gone away: the relay asks the NNI manager
to stop the experiment (so no manager is left running either) and exits with status 3.
"""
from __future__ import annotations

import argparse
import socket
import sys
import urllib.request
from pathlib import Path

import nni

from . import _protocol as protocol

__all__ = ['main']

_EXIT_OWNER_GONE = 3
_EXIT_INTERRUPTED = 130


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m nni_proxyless.webui._relay')
    parser.add_argument('--port', type=int, required=True, help="the user's process listens here (127.0.0.1)")
    parser.add_argument('--token-file', required=True,
                        help='a file (readable by this user only) holding the token that proves to the user process '
                             'who is connecting')
    parser.add_argument('--manager-port', type=int, required=True, help="NNI manager's REST port")
    return parser.parse_args(argv)


def _stop_manager(manager_port: int) -> None:
    """Ask the NNI manager to stop the experiment (it also stops this trial)."""
    url = f'http://127.0.0.1:{manager_port}/api/v1/nni/experiment'
    try:
        urllib.request.urlopen(urllib.request.Request(url, method='DELETE'), timeout=10).close()
    except OSError as exc:
        print(f'relay: could not stop the NNI manager at {url}: {exc}', file=sys.stderr, flush=True)


def _serve(conn: socket.socket, manager_port: int) -> int:
    """Forward messages until told the search is done; return the trial's exit status."""
    with conn.makefile('rb') as reader:
        for line in reader:
            message = protocol.decode(line)
            kind = message.get('type')
            if kind == protocol.DONE:
                return 1 if message.get('failed') else 0
            if kind == protocol.INTERMEDIATE:
                nni.report_intermediate_result(message['metrics'])
            elif kind == protocol.FINAL:
                nni.report_final_result(message['metrics'])
            elif kind == protocol.LOG:
                print(message['text'], flush=True)
            else:
                conn.sendall(protocol.reply(f'unknown message {kind!r}'))
                continue
            conn.sendall(protocol.reply())
    print('relay: the search process closed the connection without saying it was done; '
          'stopping the NNI experiment', file=sys.stderr, flush=True)
    _stop_manager(manager_port)
    return _EXIT_OWNER_GONE


def main(argv: list[str] | None = None) -> int:
    """Run the relay; return the process exit status (0 search done, 1 search failed, 3 owner gone)."""
    args = _parse_args(argv)
    try:
        parameters = nni.get_next_parameter() or {}  # NNI requires it before any report
        token = Path(args.token_file).read_text().strip()
        hello = protocol.hello(token, parameters.get('trial', protocol.SEARCH_TRIAL), nni.get_trial_id())
        with socket.create_connection(('127.0.0.1', args.port), timeout=30) as conn:
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(protocol.encode(hello))
            print(f'relay: connected to the search process on 127.0.0.1:{args.port}', flush=True)
            return _serve(conn, args.manager_port)
    except KeyboardInterrupt:  # NNI stops trials with SIGINT
        return _EXIT_INTERRUPTED
    except ConnectionError as exc:
        print(f'relay: lost the search process on 127.0.0.1:{args.port}: {exc}', file=sys.stderr, flush=True)
        _stop_manager(args.manager_port)
        return _EXIT_OWNER_GONE


if __name__ == '__main__':
    sys.exit(main())
