"""`python -m devstack <command>`: small helpers for the local stack.

token [--as requester|reader|broker|<id>] [--scope SCOPE]   print a bearer token from the emulator's Entra ID
"""

from __future__ import annotations

import sys

COMMANDS = ("token",)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments or arguments[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    from devstack.demo_tokens import main as token_main

    return token_main(arguments[1:])


if __name__ == "__main__":
    raise SystemExit(main())
