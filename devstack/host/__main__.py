"""`python -m devstack.host [--app-dir DIR] [--port 7071] [--settings FILE] [--no-auth] [--no-easy-auth]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

from devstack.host.easy_auth import APP_SETTING, EasyAuthConfig, EasyAuthConfigError, easy_auth_requested
from devstack.host.host_config import HostConfigError, load_host_config
from devstack.host.indexing import FunctionIndexError, import_function_app, index_functions
from devstack.host.keys import HostKeys
from devstack.host.queue_listener import DEFAULT_LEASE
from devstack.host.runtime import Host, HostOptions
from devstack.host.settings import SettingsError, apply_settings, find_settings_file, read_local_settings

DEFAULT_PORT = 7071
log = logging.getLogger("devstack.host")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.host", description=__doc__)
    parser.add_argument("--app-dir", type=Path, default=Path.cwd(), help="folder holding function_app.py and host.json")
    parser.add_argument(
        "--port", type=int, help=f"HTTP port on 127.0.0.1 (default: Host.LocalHttpPort or {DEFAULT_PORT})"
    )
    parser.add_argument("--settings", type=Path, help="settings file (default: local.settings.json, else the sample)")
    parser.add_argument("--no-auth", action="store_true", help="do not require function or master keys")
    parser.add_argument(
        "--no-easy-auth",
        action="store_true",
        help="no App Service authentication in front of the routes (also DEVSTACK_EASY_AUTH=false)",
    )
    parser.add_argument(
        "--queue-lease-seconds",
        type=float,
        default=DEFAULT_LEASE.total_seconds(),
        help="how long a received message stays invisible before its lease is renewed (default: 600, as the host)",
    )
    parser.add_argument(
        "--drain-seconds", type=float, default=10.0, help="how long a stop waits for in-flight invocations"
    )
    return parser.parse_args(argv)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The SDKs log every HTTP request at INFO.
    logging.getLogger("azure").setLevel(logging.WARNING)
    invocations = logging.getLogger("devstack.host.invocations")
    invocations.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    invocations.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    configure_logging()
    app_dir = arguments.app_dir.resolve()
    try:
        settings = read_local_settings(arguments.settings or find_settings_file(app_dir))
        applied = apply_settings(settings.values, os.environ)
        kept = sorted(set(settings.values) - set(applied))
        log.info("settings from %s; kept from the environment: %s", settings.source, ", ".join(kept) or "none")
        easy_auth_on = easy_auth_requested(os.environ, disabled_by_flag=arguments.no_easy_auth)
        if easy_auth_on:
            # As App Service does when authentication is on; set before the app is imported.
            os.environ[APP_SETTING] = "True"
        config = load_host_config(app_dir)
        functions = index_functions(import_function_app(app_dir), os.environ)
        easy_auth = EasyAuthConfig.from_environ(os.environ) if easy_auth_on else None
    except (SettingsError, HostConfigError, FunctionIndexError, EasyAuthConfigError) as error:
        log.error("cannot start the host: %s", error)
        return 1
    options = HostOptions(
        app_dir=app_dir,
        port=arguments.port or settings.http_port or DEFAULT_PORT,
        config=config,
        keys=HostKeys.from_settings(os.environ),
        enforce_keys=not arguments.no_auth,
        queue_lease=timedelta(seconds=arguments.queue_lease_seconds),
        drain_timeout=arguments.drain_seconds,
        easy_auth=easy_auth,
    )
    drained = asyncio.run(Host(options, functions).run())
    if not drained:
        # Worker threads still running user code would keep the interpreter alive; the stop is already decided.
        logging.shutdown()
        os._exit(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
