"""A CA bundle that trusts the local stack (the emulator's CA, which also signs Azurite's certificate) and everything
the machine already trusts.

`REQUESTS_CA_BUNDLE` replaces the roots requests (and so every sync Azure SDK client) would use, rather than adding
to them; a bundle holding only the emulator's CA breaks all other TLS in a shell that exports it. This one holds the
local CA first, then the certificates the caller already pointed `REQUESTS_CA_BUNDLE` at (a corporate proxy's, say),
then the system roots: OpenSSL's default file (`SSL_CERT_FILE` when set), else the usual distribution paths, else
certifi's bundle, which is what requests uses when nothing is set.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path

BUNDLE_SETTING = "REQUESTS_CA_BUNDLE"
_DISTRIBUTION_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",  # macOS, OpenBSD
)


def system_ca_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The file of root certificates this machine trusts, or None when none is found."""
    environ = os.environ if environ is None else environ
    paths = ssl.get_default_verify_paths()
    candidates = [environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile, *_DISTRIBUTION_BUNDLES]
    for candidate in candidates:
        if candidate and _has_certificates(Path(candidate)):
            return Path(candidate)
    try:
        import certifi
    except ImportError:  # pragma: no cover - requests depends on certifi
        return None
    return Path(certifi.where())


def write_ca_bundle(path: Path, local_cas: Iterable[Path], *, environ: Mapping[str, str] | None = None) -> Path:
    """Write `local_cas`, the caller's previous REQUESTS_CA_BUNDLE (unless it is `path` itself) and the system roots
    into `path` (atomically; rewritten on every call, so a renewed CA replaces the old one). Returns `path`."""
    environ = os.environ if environ is None else environ
    sources = list(local_cas)
    previous = environ.get(BUNDLE_SETTING)
    if previous and Path(previous).resolve() != path.resolve() and _has_certificates(Path(previous)):
        sources.append(Path(previous))
    system = system_ca_file(environ)
    if system is not None:
        sources.append(system)
    seen: set[Path] = set()
    parts = []
    for source in sources:
        resolved = source.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        text = source.read_text(encoding="utf-8", errors="replace").strip()
        parts.append(f"# {source}\n{text}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text("\n".join(parts), encoding="utf-8")
    os.replace(partial, path)
    return path


def _has_certificates(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return b"-----BEGIN CERTIFICATE-----" in handle.read(1 << 16)
    except OSError:
        return False
