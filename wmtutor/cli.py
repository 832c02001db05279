"""The ``wmtutor`` command. Each stage of the course adds a subcommand here.

wmtutor presets            # the active preset and every size in it
wmtutor presets --all      # all three presets
"""

from __future__ import annotations

import argparse
import sys

from wmtutor.presets import ENV_VAR, PRESETS, get_preset


def add_preset_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--preset`` flag every command and script shares."""
    parser.add_argument(
        "--preset", default=None, help=f"tiny | laptop | paper (default: ${ENV_VAR} or laptop)"
    )


def cmd_presets(args: argparse.Namespace) -> None:
    names = sorted(PRESETS) if args.all else [get_preset(args.preset).name]
    for name in names:
        print(PRESETS[name].describe())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmtutor", description="World Models, step by step: the course's command line."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("presets", help="show the active preset (or all) and its sizes")
    add_preset_argument(p)
    p.add_argument("--all", action="store_true", help="show every preset")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as err:  # bad input: one clear line, no traceback
        print(f"wmtutor {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
