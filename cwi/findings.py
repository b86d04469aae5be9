"""What each chapter finds, for the book's first page: one computed paragraph per chapter, glued as text.

A chapter calls :func:`glue_finding` with the sentence its own numbers decide;
``book/intro.md`` pastes each under "What the book finds" with MyST-NB's glue
from another notebook (``{glue:text}`05_correlations.ipynb::finding```).  So
the first page says what this build found, in every profile, and nothing on it
is written by hand.  The text is plain (Markdown emphasis is dropped): a glued
HTML object, tried first, left the Similarity chapter's widget cell waiting
forever under papermill.
"""

from __future__ import annotations

import re

__all__ = ["KEY", "STATUS_WORDS", "glue_finding", "plain", "glued_number"]

KEY = "finding"  # the glue key every chapter uses; intro.md names the chapter
# A measured false-positive rate against the nominal one, in a few words (keys of cwi.inference.RATE_WORDS).
STATUS_WORDS = {"consistent": "consistent with the nominal rate",
                "below": "below the nominal rate: conservative, so a comparison not won is no evidence of no difference",
                "above": "above the nominal rate, so the words are descriptions, not findings"}


def plain(markdown: str) -> str:
    """`markdown` without the emphasis and code marks the chapters write (``**``, ``*``, backticks), on one line."""
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", markdown)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", text)
    return " ".join(re.sub(r"`([^`]+)`", r"\1", text).split())


def glue_finding(markdown: str) -> None:
    """Glue `markdown`, as plain text, as this chapter's finding for the first page (not displayed here).

    Nothing is returned: a chapter that ends a cell with this call would otherwise show the text again as the
    cell's output (the Attribution, Correlations and Similarity chapters did, in a raw string box).
    """
    from myst_nb import glue

    glue(KEY, plain(markdown), display=False)


def glued_number(value) -> float | None:
    """`value` as a float for a glued record, or None where it is not finite.

    Glued values are read back as Python literals (the tests, the first page);
    a NaN would be written ``nan``, which is not one.
    """
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None
