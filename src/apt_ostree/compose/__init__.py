"""Compose: treefile -> Debian packages -> OSTree-ready tree -> commit."""

from pathlib import Path

DEFAULT_CACHEDIR = Path("/var/cache/apt-ostree/compose")
