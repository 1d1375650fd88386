"""State tests reuse the Apollo job fixtures."""

from ..apollo.conftest import sandbox

__all__ = ["sandbox"]
