"""How a run stops: the first SIGINT/SIGTERM asks every host to stop cleanly, the second leaves at once.

A :class:`Stop` belongs to one run. Its :attr:`Stop.requested` event is what
every host's thread reads (``ctx.stopping``): no new command starts once it is
set. After Ctrl-C the commands already running get :data:`INTERRUPT_GRACE`
seconds, then they are killed; after SIGTERM they are killed at once (whoever
sent it sends SIGKILL soon, and the cleanup needs that time). The cleanup
itself (switch back, remove the new release, unlock) is never killed by a
grace timer started before it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fapistrano.errors import ExitCode

#: Seconds a running command may go on after Ctrl-C before it is killed.
INTERRUPT_GRACE = 10.0

#: fap's exit status after a signal, once cleaned up: 128 + the signal's number, as shells report it.
SIGNAL_EXIT = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}


class Stop:
    """One run's stop: asked by a signal (:meth:`interrupt`), read by every host, ended by the cleanup.

    ``report`` says what happens (from a thread of its own: a signal handler may
    interrupt the main thread while it holds the reporter's lock); ``cancel``
    kills the commands still running; ``leave_now`` releases what must not be
    left behind when a second signal makes fap exit at once (the locks).
    """

    def __init__(self, report: Callable[[str], None], cancel: Callable[[], None], leave_now: Callable[[], None]) -> None:
        self._report = report
        self._cancel = cancel
        self._leave_now = leave_now
        #: Set by the first signal: start no new command (``ctx.stopping``).
        self.requested = threading.Event()
        #: The signal that stopped the run, once one did.
        self.signal: signal.Signals | None = None
        # The grace timer's kill and the cleanup must not overlap: a late kill would hit a cleanup command.
        self._cancel_lock = threading.Lock()
        self._cancelling_over = False
        # Which stretch of the run a grace timer belongs to: one started before the cleanup kills nothing in it.
        self._cancel_window = 0

    @property
    def exit_code(self) -> ExitCode:
        """fap's exit status for this stop: 130 after SIGINT, 143 after SIGTERM."""
        return SIGNAL_EXIT[self.signal or signal.SIGINT]

    def interrupt(self, signum: int = signal.SIGINT, _frame: Any = None) -> None:
        """First SIGINT/SIGTERM: start no new command, end running ones, clean up. Second: kill them, leave now.

        After SIGINT running commands get a grace period; after SIGTERM they are killed at once.
        """
        received = signal.Signals(signum)
        if self.requested.is_set():
            # No cleanup, but no orphans either: the commands this run started die with it, and its locks go.
            self._cancel()
            self._leave_now()
            os._exit(SIGNAL_EXIT.get(received, ExitCode.INTERRUPTED))
        self.signal = received
        self.requested.set()
        grace = 0.0 if received == signal.SIGTERM else INTERRUPT_GRACE
        if received == signal.SIGTERM:
            message = "terminated (SIGTERM): killing running commands, then cleaning up; SIGTERM again to quit at once"
        else:
            message = (f"interrupted: finishing running commands (killed after {grace:.0f} s), then cleaning up;"
                       " Ctrl-C again to quit at once")
        threading.Thread(target=self._report, args=(message,), daemon=True).start()
        timer = threading.Timer(grace, self._cancel_after_grace, args=(self._cancel_window,))
        timer.daemon = True
        timer.start()

    def _cancel_after_grace(self, window: int) -> None:
        with self._cancel_lock:
            if not self._cancelling_over and window == self._cancel_window:
                self._cancel()
                self._cancelling_over = True

    def stop_cancelling(self) -> None:
        """Cleanup begins: the grace timer kills nothing from now on (waits for a kill already under way)."""
        with self._cancel_lock:
            self._cancelling_over = True

    @contextlib.contextmanager
    def cancellable(self) -> Iterator[None]:
        """Steps of the failure path (``fap_deploy_failed``, ``failed`` steps): a signal now stops them as it stops a phase.

        A grace timer of a signal that came before does not reach into them:
        that signal is why they run. Once they end, nothing is killed again
        (the switch-back, the removal of the release and the unlock follow).
        """
        with self._cancel_lock:
            reopened = self._cancelling_over  # in the cleanup; before it (--max-fail drops a host) nothing changes
            if reopened:
                self._cancel_window += 1
                self._cancelling_over = False
        try:
            yield
        finally:
            if reopened:
                self.stop_cancelling()


def install_signal_handlers(handler: Callable[[int, Any], None]) -> dict[signal.Signals, Any]:
    """SIGINT and SIGTERM call ``handler`` (a :meth:`Stop.interrupt`); returns the handlers replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    # A signal ignored by whoever started fap (nohup) stays ignored.
    return {number: signal.signal(number, handler) for number in SIGNAL_EXIT
            if signal.getsignal(number) is not signal.SIG_IGN}


def restore_signal_handlers(previous: dict[signal.Signals, Any]) -> None:
    """Put back what :func:`install_signal_handlers` replaced."""
    if threading.current_thread() is threading.main_thread():
        for number, handler in previous.items():
            signal.signal(number, handler)
