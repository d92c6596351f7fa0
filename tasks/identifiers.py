"""What identifies a person in free text: one matcher for every check that keeps a name out of
what others read (the complainant's letter, the FOI return, the learning register, the summary
for the Case Review Committee), so each check differs only in whose names it looks for.

A name is found as a whole word in any case: the full name, or any of its words long enough to
mean something (titles and ranks aside); a collar number whole or by its digits.
"""

from __future__ import annotations

import re

# Titles and ranks in a recorded name are not what identifies the person.
TITLES = frozenset({"pc", "dc", "ps", "ds", "sgt", "insp", "di", "ci", "supt", "mr", "mrs", "ms",
                    "miss", "mx", "dr"})


def name_parts(name: str | None, min_length: int = 3,
               titles: frozenset[str] = TITLES) -> list[str]:
    """The full name and each of its words of `min_length` letters or more, titles left out."""
    whole = " ".join((name or "").split())
    words = [w for w in re.findall(r"[\w']+", whole)
             if len(w) >= min_length and not w.isdigit() and w.lower().strip(".") not in titles]
    return [p for p in [whole, *words] if p]


def collar_parts(collar_number: str | None) -> list[str]:
    """The collar number, and each run of two or more digits in it ("PC 4711" -> "4711")."""
    collar = (collar_number or "").strip()
    return [p for p in [collar, *re.findall(r"\d{2,}", collar)] if p]


def mentions(text: str, needle: str) -> bool:
    """`needle` in `text` as a whole word (or words), ignoring case; no regex, so a decade of
    summaries is checked in well under a second."""
    if not needle:
        return False
    haystack, word = text.casefold(), needle.casefold()
    start = haystack.find(word)
    while start != -1:
        end = start + len(word)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return True
        start = haystack.find(word, start + 1)
    return False


def mentions_any(text: str, needles: list[str]) -> bool:
    return any(mentions(text, needle) for needle in needles)
