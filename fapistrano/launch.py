"""The ``fap`` command's first lines: Ctrl-C while Python is still importing fap exits quietly.

Importing the command line (click, rich, the config loader) takes a few hundred
milliseconds on a busy machine. A SIGINT or SIGTERM in that window used to end
in a traceback; here it ends with ``fap: interrupted`` (130) or
``fap: terminated`` (143). Nothing has been started yet, so there is nothing to
clean up. :func:`fapistrano.cli.main` replaces these handlers before it opens
any connection.
"""

from __future__ import annotations

import os
import signal
from typing import Any

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

    run()
