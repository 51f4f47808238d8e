"""The broker's version, read once from the installed metadata or pyproject."""

from importlib import metadata

_DISTRIBUTION = "serverless-deployment-broker"
_FALLBACK = "0.1.0"


def broker_version() -> str:
    try:
        return metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # The function app is deployed as plain files, not as an installed distribution.
        return _FALLBACK
