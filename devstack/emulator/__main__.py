"""`python -m devstack.emulator`: run the emulator in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from devstack.emulator.scenario import DEMO_SCENARIO, load_scenario_document
from devstack.emulator.server import EmulatorServer
from devstack.emulator.state import EmulatorState
from devstack.emulator.tls import ensure_tls_files
from devstack.envfile import write_env_file
from devstack.ports import LOOPBACK

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TLS_DIR = REPO_ROOT / ".devstack" / "tls"


def vault_port(text: str) -> tuple[str, int]:
    name, separator, port = text.partition("=")
    if not separator or not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, got {text!r}")
    return name, int(port)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.emulator", description=__doc__)
    parser.add_argument("--scenario", type=Path, default=DEMO_SCENARIO, help="scenario JSON (default: demo)")
    parser.add_argument("--host", default=LOOPBACK, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="ARM/identity/admin port (default 0: a free port)")
    parser.add_argument(
        "--vault-port",
        action="append",
        default=[],
        type=vault_port,
        metavar="NAME=PORT",
        help="serve the scenario's vault NAME on PORT (repeatable; default: a free port per vault)",
    )
    parser.add_argument(
        "--topic-port", type=int, default=0, help="serve the Event Grid topic on this port (default 0: a free port)"
    )
    parser.add_argument("--env-file", type=Path, help="write KEY=VALUE settings for the Azure SDKs here")
    parser.add_argument("--state-file", type=Path, help="persist resources to this JSON file across restarts")
    parser.add_argument("--tls-dir", type=Path, default=DEFAULT_TLS_DIR, help="CA and server certificate folder")
    parser.add_argument(
        "--loose",
        action="store_true",
        help="accept request bodies their api-version's schema does not allow (default: strict, ARM's 400)",
    )
    return parser.parse_args(argv)


def scenario_document(args: argparse.Namespace) -> dict:
    document = load_scenario_document(args.scenario)
    if args.loose:
        document["loose"] = True
    return document


async def serve(args: argparse.Namespace) -> None:
    state = EmulatorState(scenario_document(args), state_file=args.state_file)
    server = EmulatorServer(
        state,
        ensure_tls_files(args.tls_dir),
        host=args.host,
        port=args.port,
        fixed_vault_ports=dict(args.vault_port),
        fixed_topic_port=args.topic_port,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await server.start()
    try:
        env = server.env()
        if args.env_file:
            write_env_file(args.env_file, env)
        print(f"Azure emulator on {server.arm_url} (admin: {env['EMULATOR_ADMIN_URL']}); Ctrl-C stops it", flush=True)
        for name, url in server.vault_urls.items():
            print(f"  Key Vault {name}: {url}", flush=True)
        print(f"  Event Grid topic: {server.topic_endpoint}", flush=True)
        if args.env_file:
            print(f"  settings: {args.env_file} (source it to point the Azure SDKs here)", flush=True)
        await stopping.wait()
    finally:
        await server.stop()
        if args.env_file:
            args.env_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
