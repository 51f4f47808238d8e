"""The package version, sent in the User-Agent header of every request."""

VERSION = "0.1.0"
