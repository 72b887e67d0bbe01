"""apt-ostree: an image-based Debian system on OSTree, with package layering."""

__version__ = "0.1.0"
