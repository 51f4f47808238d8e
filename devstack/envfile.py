"""KEY=VALUE env files under .devstack/, read and written by the stack and its users.

Values are written in single quotes (a `'` inside becomes `'\\''`), so `set -a; source FILE; set +a` in bash or zsh
gives every variable exactly its value, `;` and spaces included. Comment lines (`# ...`) may group the variables.
Reading accepts quoted and bare values, so files other tools write (the emulator's) read the same way.

`python -m devstack.envfile FILE` prints the file as `export` lines for `eval "$(...)"`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote(value: str) -> str:
    """`value` as one single-quoted shell word."""
    return "'" + value.replace("'", "'\\''") + "'"


def unquote(text: str) -> str:
    """The value of a shell word made of single-quoted, double-quoted and bare parts (no expansions)."""
    try:
        return _unquote(text)
    except (IndexError, ValueError):
        raise ValueError(f"unterminated quote in {text!r}") from None


def _unquote(text: str) -> str:
    value, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "'":
            end = text.index("'", index + 1)
            value.append(text[index + 1 : end])
            index = end + 1
        elif char == '"':
            index += 1
            while text[index] != '"':
                if text[index] == "\\" and text[index + 1] in '"\\$`':
                    index += 1
                value.append(text[index])
                index += 1
            index += 1
        elif char == "\\" and index + 1 < len(text):
            value.append(text[index + 1])
            index += 2
        else:
            value.append(char)
            index += 1
    return "".join(value)


def write_env_file(
    path: Path, values: Mapping[str, str], *, sections: Sequence[tuple[str, Sequence[str] | None]] = ()
) -> None:
    """Write `values`, quoted, readable by the owner only (they may hold keys). `sections` (title, names) group them
    under `# title` lines, in that order; names None: every value not yet written. Values no section takes come
    last, without a title."""
    for name in values:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a shell variable name")
    groups: list[tuple[str | None, list[str]]] = []
    written: set[str] = set()
    for title, names in sections:
        chosen = [name for name in (values if names is None else names) if name in values and name not in written]
        written.update(chosen)
        groups.append((title, chosen))
    groups.append((None, [name for name in values if name not in written]))
    lines: list[str] = []
    for title, names in groups:
        if not names:
            continue
        if title is not None:
            lines.append(("\n" if lines else "") + f"# {title}")
        lines += [f"{name}={quote(values[name])}" for name in names]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    partial.chmod(0o600)
    partial.replace(path)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            key, _, value = stripped.removeprefix("export ").partition("=")
            values[key.strip()] = unquote(value.strip())
    return values


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print('usage: python -m devstack.envfile FILE   (prints export lines: eval "$(...)")', file=sys.stderr)
        return 2
    for name, value in read_env_file(Path(arguments[0])).items():
        print(f"export {name}={quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
