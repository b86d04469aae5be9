"""What each chapter finds, for the book's first page: one computed paragraph per chapter, glued as HTML.

A chapter calls :func:`glue_finding` with the sentence its own numbers decide;
``book/intro.md`` pastes each under "What the book finds" (``{glue:any}`` with
``:doc:``, MyST-NB's glue from another notebook, which pastes HTML).  So the
first page says what this build found, in every profile, and nothing written by hand.
"""

from __future__ import annotations

import html
import re

__all__ = ["KEY", "STATUS_WORDS", "glue_finding", "to_html"]

KEY = "finding"  # the glue key every chapter uses; intro.md names the chapter
# A measured false-positive rate against the nominal one, in a few words (keys of cwi.inference.RATE_WORDS).
STATUS_WORDS = {"consistent": "consistent with the nominal rate", "below": "below the nominal rate",
                "above": "above the nominal rate, so the words are descriptions, not findings"}


def to_html(markdown: str) -> str:
    """The Markdown the chapters write (``**bold**``, ``*italic*``, ```code```), as HTML; everything else escaped."""
    text = html.escape(markdown, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def glue_finding(markdown: str) -> str:
    """Glue `markdown` as this chapter's finding for the first page (HTML, not displayed here); return the HTML."""
    from IPython.display import HTML
    from myst_nb import glue

    fragment = f'<p class="cwi-finding">{to_html(markdown)}</p>'
    glue(KEY, HTML(fragment), display=False)
    return fragment
