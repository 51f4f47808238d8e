"""App settings: local.settings.json (or the committed sample) applied to the environment as Core Tools does."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

SETTINGS_FILE = "local.settings.json"
SAMPLE_SETTINGS_FILE = "local.settings.sample.json"
_APP_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")


class SettingsError(ValueError):
    """The settings file cannot be used, or a %SETTING% expression does not resolve."""


@dataclass(frozen=True)
class LocalSettings:
    source: Path | None
    values: dict[str, str]
    http_port: int | None


def find_settings_file(app_dir: Path) -> Path | None:
    for name in (SETTINGS_FILE, SAMPLE_SETTINGS_FILE):
        if (app_dir / name).is_file():
            return app_dir / name
    return None


def read_local_settings(path: Path | None) -> LocalSettings:
    if path is None:
        return LocalSettings(None, {}, None)
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("IsEncrypted"):
        raise SettingsError(f"{path} is encrypted; this host reads only plain settings")
    values = {}
    for name, value in (document.get("Values") or {}).items():
        if isinstance(value, dict | list):
            raise SettingsError(f"{path}: Values.{name} must be a string, not a JSON {type(value).__name__}")
        values[name] = _as_setting_text(value)
    port = (document.get("Host") or {}).get("LocalHttpPort")
    return LocalSettings(path, values, int(port) if port else None)


def apply_settings(values: Mapping[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Copy settings into the environment, skipping names it already defines; return the names copied."""
    applied = []
    for name, value in values.items():
        if name not in environ:
            environ[name] = value
            applied.append(name)
    return applied


def resolve_app_settings(text: str, environ: Mapping[str, str]) -> str:
    """Replace each %NAME% with the app setting NAME, as the host does for binding properties."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise SettingsError(f"'%{name}%' does not resolve to a value: app setting {name} is not defined")
        return environ[name]

    return _APP_SETTING_EXPRESSION.sub(setting, text)


def _as_setting_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
