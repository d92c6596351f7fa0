"""Validation errors of a referral, each tied to the field it is about.

Pydantic reports rules that span fields (dates in order, a reviewer who is the officer) against
the whole model; the portal points each one at the field a person should change, so both the
form's error summary and the API's 422 name a field path such as `reviewer.aa_opinion`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Phrases of the cross-field rules in tasks.intake and the field each one is about.
CROSS_FIELD_RULES: tuple[tuple[str, str], ...] = (
    ("referral date cannot be in the future", "referred_on"),
    ("incident date must be on or before", "incident_on"),
    ("concern must be reported on or before the referral date", "concern_reported_on"),
    ("before 1 February 2020", "concern_reported_on"),
    ("public complaint needs the complainant", "complainant"),
    ("reviewer cannot be the participating officer", "reviewer.email"),
    ("staff reviewer needs", "reviewer.aa_opinion"),
    ("complainant's email address or postal address", "complainant.email"),
)


@dataclass(frozen=True)
class FieldError:
    field: str  # dotted path in ReferralIn, e.g. "officer.email"; "" for the body as a whole
    message: str
    type: str


def _path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts)


def _plain(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def field_errors(errors: Iterable[Mapping[str, Any]],
                 nouns: Mapping[str, str] | None = None) -> list[FieldError]:
    """Pydantic error dicts -> one FieldError per field (first error wins), in input order.

    `nouns` (path -> "the officer's email address") turns Pydantic's wording into plain
    English; without it the path itself is used.
    """
    found: dict[str, FieldError] = {}
    for error in errors:
        kind = str(error.get("type", ""))
        path = _path(error.get("loc", ()))
        message = _plain(str(error.get("msg", "")))
        given = error.get("input")
        if kind in ("value_error", "assertion_error"):
            for phrase, target in CROSS_FIELD_RULES:
                if phrase in message:
                    path = target
                    break
            else:
                if isinstance(given, str) and not given.strip() and nouns and path in nouns:
                    message = f"Enter {nouns[path]}"  # a blank email, not a malformed one
                elif nouns and path in nouns:
                    # "Enter an email address ..." three times in a summary says not whose.
                    message = message.replace("an email address", nouns[path], 1)
        else:
            message = friendly(kind, path, error.get("ctx") or {}, given,
                               (nouns or {}).get(path, ""), message)
        found.setdefault(path, FieldError(path, message, kind))
    return list(found.values())


def friendly(kind: str, path: str, ctx: Mapping[str, Any], given: Any, noun: str,
             fallback: str) -> str:
    noun = noun or (path.replace(".", " ").replace("_", " ") if path else "the referral")
    upper = noun[:1].upper() + noun[1:]
    if kind == "missing" or (kind == "string_too_short" and not str(given or "").strip()):
        return f"Enter {noun}"
    if kind == "string_too_short":
        return f"{upper} must be {ctx.get('min_length')} characters or more"
    if kind == "string_too_long":
        return f"{upper} must be {ctx.get('max_length')} characters or fewer"
    if kind in ("enum", "literal_error"):
        return f"Select {noun}"
    if kind.startswith("date") or kind.startswith("datetime"):
        return f"{upper} must be a real date, like 2025-06-13"
    if kind == "bool_parsing" or kind == "bool_type":
        return f"Select yes or no for {noun}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"Give {noun} as an object"
    if kind in ("string_type",):
        return f"{upper} must be text"
    return fallback
