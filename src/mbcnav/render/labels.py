"""Display labels shared by every renderer (terminal, web, PDF), so they never drift apart."""

from __future__ import annotations

TIER_LABEL = {"preferred": "Preferred", "alternative": "Alternative", "selected_cases": "In selected cases"}
SUBTYPE_LABEL = {
    "hr_positive_her2_negative": "Hormone receptor-positive, HER2-negative",
    "hr_positive_her2_positive": "Hormone receptor-positive, HER2-positive",
    "hr_negative_her2_positive": "Hormone receptor-negative, HER2-positive",
    "triple_negative": "Triple-negative",
    "unknown": "Not known yet: some receptor results are missing",
}
