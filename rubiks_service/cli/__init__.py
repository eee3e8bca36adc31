"""The `rubiks` command line. One module per command group, each with `add_parsers(subparsers)`
beside its handlers; a handler returns the exit status (2: one line on stderr for a problem the
user can fix). Handlers import what they need when they run, so the parser builds quickly."""
from __future__ import annotations

import argparse

from . import data, info, profile, queue, serving, tracking, training
from ._common import run_command

# the order of `rubiks --help`
GROUPS = (info, profile, training, serving, tracking, queue, data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rubiks", description="RubiksNet training service")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args)  # one redacted line and exit 2 for a user error; pure stdout with --json

