"""Bearer tokens for the demo principals from the emulator's Entra ID token endpoint, through azure-identity.

`python -m devstack token --as requester` prints one for curl; tests and scripts call `credential_for` /
`bearer_token`. The principal is a demo role (`requester`, `reader`, `broker`, `approver`, `auditor`, `outsider`),
an object id or a client id; its client id and dev secret, the tenant, the emulator's authority and the broker API's
scope come from the environment (sourcing .devstack/run.env or emulator.env) or, when unset there, from those files
themselves ($DEVSTACK_DIR moves the folder, as for `make run`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from azure.identity import ClientSecretCredential

from devstack.emulator.entra import DEMO_PRINCIPALS
from devstack.envfile import read_env_file

REPO_ROOT = Path(__file__).resolve().parent.parent
# The stack's state folder, as `make run` picks it.
STATE_DIR_SETTING = "DEVSTACK_DIR"
ENV_FILE_NAMES = ("run.env", "emulator.env")
REQUIRED = ("AZURE_TENANT_ID", "EMULATOR_AUTHORITY", "BROKER_API_SCOPE")


class TokenSettingsError(LookupError):
    """The settings needed to sign a principal in are missing."""


def stack_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment over the first env file of the stack's folder that exists (the environment wins, as with
    sourcing): run.env, else emulator.env, in $DEVSTACK_DIR or .devstack/."""
    environ = os.environ if environ is None else environ
    state_dir = Path(environ.get(STATE_DIR_SETTING) or REPO_ROOT / ".devstack")
    found = next((state_dir / name for name in ENV_FILE_NAMES if (state_dir / name).is_file()), None)
    return {**(read_env_file(found) if found else {}), **environ}


def _principal_settings(env: Mapping[str, str], who: str) -> tuple[str, str]:
    """(client id, client secret) of a demo role, or of the demo principal with that object or client id."""
    wanted = who.strip().lower()
    for role in DEMO_PRINCIPALS:
        prefix = f"DEMO_{role.upper()}"
        ids = {env.get(f"{prefix}_OBJECT_ID", "").lower(), env.get(f"{prefix}_CLIENT_ID", "").lower()}
        if wanted == role or wanted in ids - {""}:
            client_id, secret = env.get(f"{prefix}_CLIENT_ID", ""), env.get(f"{prefix}_CLIENT_SECRET", "")
            if not client_id or not secret:
                raise TokenSettingsError(f"{prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET are not set")
            return client_id, secret
    raise TokenSettingsError(f"'{who}' is none of the demo principals ({', '.join(DEMO_PRINCIPALS)})")


def credential_for(who: str, env: Mapping[str, str] | None = None) -> ClientSecretCredential:
    """A ClientSecretCredential signing `who` in at the emulator, exactly as a portal would at Entra ID."""
    env = stack_env() if env is None else env
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise TokenSettingsError(
            f"{', '.join(missing)} not set: start the stack (make run) and source .devstack/run.env, or run this "
            "where .devstack/run.env exists"
        )
    client_id, secret = _principal_settings(env, who)
    return ClientSecretCredential(
        env["AZURE_TENANT_ID"],
        client_id,
        secret,
        authority=env["EMULATOR_AUTHORITY"],
        # Instance discovery would ask login.microsoftonline.com whether the emulator is a known authority.
        disable_instance_discovery=True,
        connection_verify=env.get("REQUESTS_CA_BUNDLE") or True,
    )


def bearer_token(who: str, env: Mapping[str, str] | None = None, *, scope: str | None = None) -> str:
    """An access token for `who`, for the broker's API unless `scope` names another resource."""
    env = stack_env() if env is None else env
    return credential_for(who, env).get_token(scope or env["BROKER_API_SCOPE"]).token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack token",
        description="Print an access token for a demo principal, from the emulator's token endpoint.",
    )
    parser.add_argument(
        "--as",
        dest="who",
        default="requester",
        help="requester (default), reader, approver, auditor, outsider, broker, or an object/client id",
    )
    parser.add_argument("--scope", help="the scope to ask for (default: BROKER_API_SCOPE, the broker's API)")
    arguments = parser.parse_args(argv)
    try:
        print(bearer_token(arguments.who, scope=arguments.scope))
    except TokenSettingsError as error:
        print(f"cannot get a token: {error}", file=sys.stderr)
        return 2
    return 0
