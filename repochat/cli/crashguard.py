"""Commands that run the model run in a child process, so that a native crash (a segfault in llama.cpp) ends with a
one-line message and exit status 2 instead of a bare "Segmentation fault".

The child inherits the terminal, so streaming and progress are untouched; it writes Python's view of a crash
(faulthandler) to a log file whose path the message gives. `review` (the pre-commit hook) lets the commit through
after such a crash unless --strict, as it does when the model is unavailable.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from ..engine.probe import signal_name

GUARDED_COMMANDS = {"ask", "review"}
CHILD_ENV = "REPOCHAT_GUARDED_CHILD"
CRASH_LOG_ENV = "REPOCHAT_CRASH_LOG"
EXIT_CRASHED = 2


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def should_guard(argv: Sequence[str]) -> bool:
    return command_of(argv) in GUARDED_COMMANDS and not os.environ.get(CHILD_ENV)


def enable_crash_log() -> None:
    """In the child: have a fatal signal write the Python stack to the file the parent named."""
    path = os.environ.get(CRASH_LOG_ENV)
    if path:
        try:
            faulthandler.enable(open(path, "w"))  # noqa: SIM115 - must stay open until the process ends
        except OSError:
            pass


def run_guarded(argv: Sequence[str]) -> int:
    """Run `python -m repochat ARGV` as a child and return the exit status to use."""
    log = Path(tempfile.gettempdir()) / f"repochat-crash-{os.getpid()}.log"
    env = dict(os.environ, **{CHILD_ENV: "1", CRASH_LOG_ENV: str(log)})
    child = subprocess.Popen([sys.executable, "-m", "repochat", *argv], env=env)
    restore = _forward_signals(child)
    try:
        status = child.wait()
    finally:
        restore()
    if status >= 0:
        _remove(log)
        return status
    return _report_crash(argv, -status, log)


def _forward_signals(child: subprocess.Popen[bytes]) -> Callable[[], None]:
    """SIGTERM/SIGHUP to the parent reach the child. Ctrl-C reaches the child from the terminal (same process
    group), so the parent ignores it and lets the child stop its own way. Returns what undoes this."""
    previous: dict[int, Any] = {}
    for number in (signal.SIGTERM, signal.SIGHUP):
        previous[number] = signal.signal(number, lambda signum, _frame: child.send_signal(signum))
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def undo() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return undo


def _report_crash(argv: Sequence[str], number: int, log: Path) -> int:
    name = signal_name(number)
    if number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL):
        print(f"repochat: stopped by {name}", file=sys.stderr)
        _remove(log)
        return 128 + number
    details = f"; details in {log}" if log.exists() and log.stat().st_size else ""
    command = command_of(argv)
    lets_through = command == "review" and "--strict" not in argv
    outcome = "commit not reviewed" if lets_through else "no answer"
    print(f"repochat: error: the model engine crashed ({name}) during `repochat {command}`, {outcome}; "
          f"try cpu_extra_buffers = \"off\" (REPOCHAT_CPU_EXTRA_BUFFERS=off), fewer --gpu-layers or another "
          f"model{details}", file=sys.stderr)
    return 0 if lets_through else EXIT_CRASHED


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
