"""Command-line entry points that stop quietly when their reader goes away (`wsi-llava ... | head`).

    sys.exit(exit_quietly_on_closed_pipe(main))

Python ignores SIGPIPE, so a closed pipe surfaces as `BrokenPipeError` on the next print, and again when
the interpreter flushes stdout at exit. Like `cat` or `grep`, the command then ends at once, prints
nothing more and exits 141 (128 + SIGPIPE), the status a shell pipeline reports for a reader gone away.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

EXIT_CLOSED_PIPE = 128 + 13


def exit_quietly_on_closed_pipe(main: Callable[[], int | None]) -> int:
    try:
        code = int(main() or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)          # the exit-time flush must not raise again
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
