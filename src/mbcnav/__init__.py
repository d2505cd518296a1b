"""mbcnav — Metastatic Breast Cancer Navigator.

Information to discuss with a care team, not medical advice.

    >>> import mbcnav
    >>> rec = mbcnav.recommend({"sex": "female", "tumor": {"er": "positive"}})
"""

from __future__ import annotations

from typing import Any

from mbcnav.engine import recommend
from mbcnav.profile import Profile, ProfileError

__version__ = "0.1.0"
__all__ = ["Profile", "ProfileError", "__knowledge_version__", "__version__", "recommend"]


def __getattr__(name: str) -> Any:
    # The knowledge base loads on first use, not at import.
    if name == "__knowledge_version__":
        from mbcnav.knowledge.loader import knowledge

        return knowledge().version
    raise AttributeError(name)
