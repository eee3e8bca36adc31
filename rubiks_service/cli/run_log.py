"""Quiet long commands: everything Ray, Tune, Train and Ray Data print goes to a log file, and the
terminal gets one progress display and the results.

`output_to_log(path)` points the process's file descriptors 1 and 2 at the log file (so the output of
Ray's own processes started inside it, and of C code, lands there too) and hands back two streams on
the terminal: `out` for results (stdout as it was, so `--json` stays pure) and `console` for the
progress display (stderr as it was)."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Terminal:
    out: TextIO  # results (the original stdout)
    console: TextIO  # progress (the original stderr)
    log_path: str | None  # where everything else went (None: nothing was redirected)


def default_log_path(storage_path: str, command: str) -> str:
    """<storage_path>/logs/<command>-<time>.log; with the storage path in a bucket, under the temporary
    folder: the log is this machine's, and the bucket holds only what every node shares."""
    import tempfile

    from rubiks_service import storage

    folder = (os.path.join(tempfile.gettempdir(), "rubiks-logs") if storage.is_uri(storage_path)
              else os.path.join(os.path.abspath(storage_path), "logs"))
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{command}-{time.strftime('%Y%m%d-%H%M%S')}.log")


@contextlib.contextmanager
def output_to_log(path: str | None) -> Iterator[Terminal]:
    """With `path`: fds 1 and 2 go to the log file for the duration; else the terminal is left as it is."""
    if path is None:
        yield Terminal(sys.stdout, sys.stderr, None)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    console = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    with open(path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield Terminal(out, console, path)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            console.flush()
            out.flush()


@contextlib.contextmanager
def echo_matching(log_path: str | None, console: TextIO, regex: str) -> Iterator[None]:
    """While the block runs, copy each new line of the log that matches `regex` (after Ray's worker
    tag) to the console, once: a run's per-epoch lines as its progress display."""
    import re
    import threading

    if log_path is None:
        yield
        return
    stop = threading.Event()
    pattern = re.compile(r"^(?:\([^)]*\)\s*)?(" + regex + r".*)$")

    def follow() -> None:
        seen: set[str] = set()
        with open(log_path, errors="replace") as f:
            f.seek(0, os.SEEK_END)
            while True:
                line = f.readline()
                if not line:
                    if stop.is_set():
                        return
                    time.sleep(0.5)
                    continue
                m = pattern.match(line.strip())
                if m and m.group(1) not in seen:
                    seen.add(m.group(1))
                    print(m.group(1), file=console, flush=True)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
