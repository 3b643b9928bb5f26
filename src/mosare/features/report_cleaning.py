"""Report cleaning before encoding: whole sections dropped by heading, and every diagnostic phrase that names the
subtype replaced by one neutral token, so that lines differing only in subtype come out identical."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Subtype names (and their abbreviations) per cancer type. All are applied to every cohort: a word that names a
# subtype never carries useful non-leaking signal. Matching is case-insensitive and whole-word.
BUILTIN_LEAK_PATTERNS: dict[str, tuple[str, ...]] = {
    "nsclc": (
        r"adeno(?:carcinoma(?:s|tous)?|squamous)",
        r"squamous(?:[- ]cells?)?",
        r"epidermoid",
        r"LUAD",
        r"LUSC",
        r"SqCC",
        r"SCC",
        r"acinar",
        r"lepidic",
        r"micropapillary",
        r"mucinous",
        r"bronchi(?:olo|o)-?alveolar",
        r"(?:non-?)?keratini[sz](?:ing|ation|ed)",
    ),
    "rcc": (
        r"clear[- ]?cells?",
        r"papillary",
        r"chromophobe",
        r"cc-?RCC",
        r"p-?RCC",
        r"ch-?RCC",
        r"KIRC",
        r"KIRP",
        r"KICH",
    ),
    "brca": (
        r"(?:intra)?ductal",
        r"(?:tubulo)?lobular",
        r"IDC",
        r"ILC",
        r"DCIS",
        r"LCIS",
        r"no special type",
        r"NST",
        r"signet[- ]ring",
    ),
}
# The word that replaces a whole diagnostic phrase, so that lines differing only in subtype come out identical.
SUBTYPE_TOKEN = "[subtype]"
# Words that belong to a diagnostic phrase only next to a subtype word: modifiers before it, nouns after it, and
# ", classic type"-style tails. They are swallowed with it, so "squamous cell carcinoma" and "adenocarcinoma" both
# become one token instead of "carcinoma" and nothing.
_PHRASE_BEFORE = r"(?:invasive|infiltrating|primary|lung|pulmonary|renal|kidney|breast|mammary|classic(?:al)?|conventional|pure|mixed|cell|carcinomas?\s+of|carcinomas?\s*,)"
_PHRASE_AFTER = (
    r"(?:cells?|renal|carcinomas?|carcinomatous|cancers?|neoplasms?|tumou?rs?|type|subtype|variant|predominant|"
    r"patterns?|components?|features|differentiation|in[- ]situ|of\s+the\s+(?:kidney|lung|breast))"
)
_PHRASE_TAIL = (
    r"(?:,\s*)?(?:(?:classic(?:al)?|conventional|usual|pleomorphic)\s+(?:type|variant|form)|invasive|infiltrating)"
)
_LEAK_MARK = "\x00"  # stands for a matched subtype word; reports never hold NUL (read_report refuses them)
_PHRASE_UNIT = (
    rf"(?:\b{_PHRASE_BEFORE}[\s-]+)*{_LEAK_MARK}(?:[\s-]*{_LEAK_MARK})*"
    rf"(?:[\s-]+{_PHRASE_AFTER}\b|\s*{_PHRASE_TAIL}\b)*"
)
DIAGNOSTIC_PHRASE = re.compile(
    rf"{_PHRASE_UNIT}(?:\s*(?:,|/|\band\b|\bwith\b|\bor\b)?\s*{_PHRASE_UNIT})*", re.IGNORECASE
)
_BRACKETED_PHRASE = re.compile(rf"\(\s*({DIAGNOSTIC_PHRASE.pattern})\s*\)", re.IGNORECASE)
# A report section: a blank-line-separated block that starts with "Heading:" (on its own line or before the text).
SECTION_HEADING = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 /&()-]{0,60}?)\s*:")


class ReportError(ValueError):
    """A report cannot be used; the message names the patient, the file and the fix."""


def leak_patterns(classes: Sequence[str], configured: Sequence[str] | None = None) -> list[str]:
    """The regexes removed from a cohort's reports: ``configured`` (default: every built-in) plus the class names."""
    base = list(configured) if configured is not None else [p for ps in BUILTIN_LEAK_PATTERNS.values() for p in ps]
    return list(dict.fromkeys(base + [re.escape(name) for name in classes]))


def compile_leak_patterns(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex matching any pattern as a whole word (not inside a longer word)."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ReportError(
                f"report leak pattern {pattern!r} is not a valid regular expression ({exc}); fix "
                "cohorts.<name>.report_leak_patterns in config.yaml"
            ) from exc
    if not patterns:
        return None
    alternatives = "|".join(f"(?:{p})" for p in patterns)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


def section_name(heading: str) -> str:
    """How section names compare: case-insensitive, spaces collapsed ("IMMUNOHISTOCHEMISTRY" == "Immunohistochemistry")."""
    return " ".join(heading.lower().split())


def drop_report_sections(text: str, sections: Sequence[str]) -> str:
    """Remove whole sections of a report: a block (paragraph between blank lines) starting with ``Heading:`` whose
    heading is in ``sections``, and the blocks after it up to the next block that starts with a heading."""
    if not sections:
        return text
    dropped = {section_name(name) for name in sections}
    kept, dropping = [], False
    for block in re.split(r"\n[ \t]*\n", text):
        heading = SECTION_HEADING.match(block)
        if heading:
            dropping = section_name(heading.group(1)) in dropped
        if not dropping:
            kept.append(block)
    return "\n\n".join(kept)


def clean_report(text: str, leak: re.Pattern[str] | None, drop_sections: Sequence[str] = ()) -> str:
    """Drop the configured sections, replace every diagnostic phrase naming a subtype by :data:`SUBTYPE_TOKEN`, then
    tidy the spaces and punctuation (line breaks are kept).

    The whole phrase goes, not only the subtype word: "squamous cell carcinoma, keratinizing" and "invasive
    adenocarcinoma, acinar predominant" both become the token, so no residue ("carcinoma", ", predominant") tells
    the classes apart.
    """
    text = drop_report_sections(text, drop_sections)
    if leak is not None:
        text = leak.sub(_LEAK_MARK, text)
        previous = None
        while previous != text:  # "conventional (clear cell) renal cell carcinoma": brackets inside a phrase go
            previous, text = text, _BRACKETED_PHRASE.sub(r" \1 ", text)
        text = DIAGNOSTIC_PHRASE.sub(SUBTYPE_TOKEN, text)
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" +([,.;:!?)])", r"\1", text)
    text = re.sub(r"\( +", "(", text)
    return "\n".join(line.strip() for line in text.splitlines()).strip()
