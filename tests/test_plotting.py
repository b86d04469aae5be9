"""cwi.plotting: the coloured-word HTML of the Attribution chapter."""

import pytest

from cwi import plotting


def test_coloured_words_escape_text_and_scale_colours():
    html = plotting.coloured_words(["<b>", "café", "x"], [0.0, 1.5, 9.0], vmax=3.0, label="model & co")
    assert "<b>" not in html and "&lt;b&gt;" in html and "model &amp; co" in html and "café" in html
    assert 'background:#ffffff' not in html.split("café")[0].rsplit("<span", 1)[1]  # 1.5 is coloured
    assert html.count('title="') == 3 and 'title="9.00"' in html
    assert "white-space:normal" in html and "> <span" in html  # words wrap at the spaces between them


def test_coloured_words_need_one_weight_per_word():
    with pytest.raises(ValueError, match="2 words but 1 weights"):
        plotting.coloured_words(["a", "b"], [1.0])


def test_pair_panels_and_forest_draw_one_panel_per_pair():
    import numpy as np
    import pandas as pd

    from cwi import analysis, models

    rng = np.random.default_rng(0)
    words = pd.DataFrame({"model": np.repeat(["pre", "fine", "alone"], 50), "information_gain": rng.random(150),
                          "normalised_weight": rng.random(150)})
    pairs = {"pair": models.ModelPair("pre", "fine"), "single": models.ModelPair(None, "alone")}
    fig = plotting.pair_panels(words, pairs, "information_gain", "info gain", "A caption.", bins=5)
    assert [ax.get_title() for ax in fig.axes] == ["pair", "single"]
    rows = [{"pair": p, "method": m, "dataset": d, "quantity": q, "control": c, "delta": 0.1,
             "delta_low": 0.0 if p == "pair" else 0.05, "delta_high": 0.2}
            for p in ("pair", "other") for m in ("ig", "shap") for d in ("stsb", "all")
            for q in analysis.QUANTITIES for c in analysis.CONTROLS]
    fig = plotting.forest(pd.DataFrame(rows), analysis.QUANTITIES, analysis.CONTROLS, "Caption.")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"{label}, {m}" for label in analysis.QUANTITIES.values() for m in ("IG", "SHAP")]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["pair", "other"]  # a row per pair
    fig = plotting.delta_grid(pd.DataFrame(rows), ["stsb", "all"], analysis.QUANTITIES, "none", "Caption.")
    panel = fig.axes[0]
    assert [t.get_text() for t in panel.get_yticklabels()] == ["pair IG", "pair SHAP", "other IG", "other SHAP"]
    bold = [t.get_fontweight() for t in panel.texts]  # the interval of "other" excludes 0, that of "pair" touches it
    assert bold == ["normal"] * 4 + ["bold"] * 4
