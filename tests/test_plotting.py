"""cwi.plotting: the coloured-word HTML of the Attribution chapter."""

import pytest

from cwi import plotting


def test_coloured_words_escape_text_and_scale_colours():
    html = plotting.coloured_words(["<b>", "café", "x"], [0.0, 1.5, 9.0], vmax=3.0, label="model & co")
    assert "<b>" not in html and "&lt;b&gt;" in html and "model &amp; co" in html and "café" in html
    assert 'background:#ffffff' not in html.split("café")[0].rsplit("<span", 1)[1]  # 1.5 is coloured
    assert html.count('title="') == 3 and 'title="9.00"' in html


def test_coloured_words_need_one_weight_per_word():
    with pytest.raises(ValueError, match="2 words but 1 weights"):
        plotting.coloured_words(["a", "b"], [1.0])
