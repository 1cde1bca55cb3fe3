"""Progress on a real terminal (a pseudo-terminal): the bars are drawn on stderr and cleared before an answer is
printed, so clearing them never erases the answer; without a terminal, progress is plain lines on stderr only."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

ERASE_LINE = b"\x1b[2K"
SCRIPT = """
import sys, time
from repochat.cli.progress import progress_reporter
with progress_reporter() as report:
    for done in range(3):
        report("prefill", done + 1, 3)
        time.sleep(0.15)
    {finish}
    print("THE ANSWER", flush=True)
    report("prefill", 3, 3)  # late progress after the answer: dropped, never drawn over it
"""


def run_in_terminal(finish: str) -> bytes:
    """Run the script with stdout and stderr on one pseudo-terminal; what the terminal received."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", SCRIPT.format(finish=finish)], stdout=follower,
                               stderr=follower, env={**os.environ, "COLUMNS": "100", "TERM": "xterm"})
    os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    process.wait(timeout=30)
    os.close(leader)
    return received


def test_bars_are_cleared_before_the_answer_so_it_stays_on_screen() -> None:
    screen = run_in_terminal("report.finish()")
    assert b"prefilling pages" in screen  # bars were drawn
    assert screen.rindex(b"THE ANSWER") > screen.rindex(ERASE_LINE)  # nothing erased after the answer


def test_without_finish_clearing_the_bars_would_erase_the_answer() -> None:
    """The failure the first test guards against: the same script without finish()."""
    screen = run_in_terminal("pass")
    assert screen.rindex(b"THE ANSWER") < screen.rindex(ERASE_LINE)


def test_without_a_terminal_progress_is_plain_lines_on_stderr() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(finish="report.finish()")], capture_output=True)
    assert done.stdout == b"THE ANSWER\n"
    assert done.stderr.decode().splitlines()[-1] == "prefilling pages: 3/3"
