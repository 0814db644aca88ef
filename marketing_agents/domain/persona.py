"""Which of the knowledge graph's personas a lead is, from its job title.

The graph rates channels per industry *and* persona (``CONVERTS_TO`` weights), so a recall without a
persona never hears the graph. The keys are the starter graph's persona nodes (``persona:<key>``);
the first rule whose pattern the title contains wins, executives before managers, so that a
"VP Marketing" is the CMO persona rather than a marketing manager.
"""

from __future__ import annotations

import re

PERSONA_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((key, re.compile(pattern, re.IGNORECASE)) for key, pattern in (
    ("cto", r"\b(cto|chief technology|vp,? (of )?engineering|head of engineering|(director|vp) of engineering"
            r"|engineering director)\b"),
    ("cmo", r"\b(cmo|chief marketing|vp,? (of )?marketing|head of marketing|marketing director"
            r"|director of marketing)\b"),
    ("cfo", r"\b(cfo|chief financial|vp,? (of )?finance|head of finance|finance director|director of finance"
            r"|controller)\b"),
    ("head_of_sales", r"\b(cro|chief revenue|vp,? (of )?sales|head of sales|sales director|director of sales)\b"),
    ("it_manager", r"\b(cio|chief information|it (manager|director|lead)|head of it|director of it"
                   r"|systems administrator)\b"),
    ("marketing_manager", r"\bmarketing\b"),
))


def persona_of(job_title: str | None) -> str | None:
    """The persona key for ``job_title``, or None when no rule matches (the graph is then not asked)."""
    if not job_title:
        return None
    return next((key for key, pattern in PERSONA_RULES if pattern.search(job_title)), None)
