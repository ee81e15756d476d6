"""The ``fap`` command's first lines: Ctrl-C while Python is still importing fap exits quietly.

Importing the command line (click, rich, the config loader) takes a few hundred
milliseconds on a busy machine. A SIGINT or SIGTERM in that window used to end
in a traceback; here it ends with ``fap: interrupted`` (130) or
``fap: terminated`` (143). Nothing has been started yet, so there is nothing to
clean up. :func:`fapistrano.cli.main` replaces these handlers before it opens
any connection.

Once fap has done its work and said so, it leaves without the interpreter's
teardown (freeing every object of every module: ~20 ms, a tenth of a
5-host deploy's overhead): the ``atexit`` functions run, the output is
flushed, and the process exits with fap's code. While a thread that is not a
daemon still runs, the interpreter's own exit waits for it as usual.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import Any

# fapistrano.errors.ExitCode's INTERRUPTED and TERMINATED, written out: importing the enum would import the
# package (pluggy, the public API) before these handlers are in place (tests/test_exit_codes.py knows).
_EARLY = {signal.SIGINT: (b"fap: interrupted\n", 130), signal.SIGTERM: (b"fap: terminated\n", 143)}


def _leave(signum: int, _frame: Any) -> None:
    message, code = _EARLY[signal.Signals(signum)]
    os.write(2, message)
    os._exit(code)


def main() -> None:
    """Run ``fap``: the console script's entry point, and ``python -m fapistrano``'s."""
    for number in _EARLY:
        if signal.getsignal(number) is not signal.SIG_IGN:  # nohup and `cmd &` in scripts ignore them: so do we
            signal.signal(number, _leave)
    from fapistrano.cli import main as run

    try:
        run()
    except SystemExit as done:
        _exit_now(done.code)
        raise
    _exit_now(0)


def _exit_now(code: Any) -> None:
    """Exit with ``code`` as ``sys.exit`` would, without the interpreter's teardown; return when that is not safe."""
    if not (code is None or isinstance(code, int)):
        return  # sys.exit("message"): the interpreter prints it
    if any(thread.is_alive() and not thread.daemon for thread in threading.enumerate() if thread is not threading.main_thread()):
        return
    atexit._run_exitfuncs()  # noqa: SLF001 - what the interpreter's exit would run, plugins' included
    status = code or 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120  # what Python exits with when it cannot flush its output
    os._exit(status)
