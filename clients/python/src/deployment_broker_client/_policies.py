"""Pipeline policies of the broker's own: plain HTTP to loopback for the local stack, and nothing else."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackHttpPolicy(SansIOHTTPPolicy):
    """Lets a bearer token travel over plain HTTP to loopback only, where the local Functions host listens.

    azure-core's BearerTokenCredentialPolicy refuses to send a token over anything but HTTPS. The local stack's host
    (`make run`) serves HTTP on 127.0.0.1, and a token sent there never leaves the machine; every other URL still
    needs HTTPS.
    """

    def on_request(self, request: PipelineRequest) -> None:
        url = request.http_request.url
        if url.lower().startswith("http://") and is_loopback(url):
            request.context["enforce_https"] = False
