"""The only package that touches ``gi.repository.OSTree``.

``repo``: repositories and commits; ``sysroot``: deployments and boot entries.
"""

from .repo import Commit, Repo, variant
from .sysroot import Deployment, Sysroot

__all__ = ["Commit", "Deployment", "Repo", "Sysroot", "variant"]
