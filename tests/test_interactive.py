"""cwi.interactive: the data the kernel-free views carry (the browser side is checked in test_book)."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from cwi import interactive, models


def payload(view) -> dict:
    """The JSON a view hands its script."""
    return json.loads(re.search(r"cwiInteractive\.\w+\(document\.getElementById\(\"[\w-]+\"\), (\{.*\})\);</script>",
                                view.data, re.S).group(1))


def weights_table() -> pd.DataFrame:
    rows = []
    for model, sentences in (("pre", 3), ("fine", 2)):
        for method in ("ig", "shap"):
            for sid in range(sentences):
                words = ["a", "</script>", f"<!--<script>{sid}"]
                for k, word in enumerate(words):
                    rows.append({"model": model, "dataset": "stsb", "method": method, "sentence_id": sid,
                                 "sentence": " ".join(words), "word_index": k, "word": word,
                                 "normalised_weight": 1.0 + k + (method == "shap") + (model == "fine") / 10})
    return pd.DataFrame(rows)


def test_explorer_carries_every_weight_by_model_and_method_and_escapes_its_data():
    view = interactive.sentence_explorer(weights_table(), first="pre", second="fine")
    script = view.data.split("<script>", 1)[1]  # words such as "</script>" cannot end or derail it
    assert script.count("</script>") == 1 and "<!--" not in script
    data = payload(view)
    assert data["models"] == ["pre", "fine"] and data["methods"] == ["ig", "shap"]
    assert len(data["sentences"]) == 3 and data["sentences"][0]["w"] == ["a", "</script>", "<!--<script>0"]
    assert interactive.sentence_explorer(weights_table(), "pre", "fine").data == view.data  # reproducible
    assert data["sentences"][0]["v"]["fine|shap"] == [2.1, 3.1, 4.1]
    assert "fine|ig" not in data["sentences"][2]["v"]  # the fine-tuned model did not attribute it
    with pytest.raises(ValueError, match="model 'other' has no word weights"):
        interactive.sentence_explorer(weights_table(), first="pre", second="other")


def test_explorer_sample_prefers_sentences_every_model_attributed():
    table = weights_table()
    pre = table[table["model"] == "pre"]
    # "fine" attributed the sentences pre numbers 1 and 2, numbered 0 and 1 in its own, smaller sample.
    fine = pre[pre["sentence_id"] > 0].assign(model="fine", sentence_id=lambda t: t["sentence_id"] - 1)
    sample = interactive.explorer_sample(pd.concat([pre, fine]), per_dataset=2)
    assert sorted(sample["sentence"].unique()) == sorted(pre.loc[pre["sentence_id"] > 0, "sentence"].unique())
    assert len(sample) == 4 * 3 * 2  # both models and methods of the two sentences
    data = payload(interactive.sentence_explorer(sample, "pre", "fine"))
    assert [len(s["v"]) for s in data["sentences"]] == [4, 4]  # each sentence holds both models' weights


def test_hover_scatter_samples_shared_words_and_fits_every_word():
    rng = np.random.default_rng(0)
    n = 300
    base = pd.DataFrame({"dataset": "stsb", "sentence_id": np.arange(n) // 10, "word_index": np.arange(n) % 10,
                         "sentence": [f"sentence {i // 10}" for i in range(n)],
                         "word": [f"w{i}" for i in range(n)], "information_gain": rng.random(n)})
    frame = pd.concat([base.assign(model="pre", normalised_weight=1 + base["information_gain"]),
                       base.assign(model="fine", normalised_weight=1 + 2 * base["information_gain"],
                                   sentence_id=base["sentence_id"] + 1000).iloc[:200]])  # its own numbering
    pairs = {"p": models.ModelPair("pre", "fine"), "single": models.ModelPair(None, "pre")}
    data = payload(interactive.hover_scatter(frame, pairs, {"information_gain": "info gain"}, max_words=50))
    first, single = data["pairs"]
    assert len(first["words"]) == 50 and set(first["words"]) <= {f"w{i}" for i in range(200)}  # both weighted them
    assert len(single["words"]) == 50 and single["models"][0]["role"] == "fine-tuned"
    slopes = [m["fit"]["information_gain"][0] for m in first["models"]]
    assert slopes == pytest.approx([1.0, 2.0])
    constant = frame.assign(information_gain=1.0)
    flat = payload(interactive.hover_scatter(constant, pairs, {"information_gain": "info gain"}))
    assert flat["pairs"][0]["models"][0]["fit"]["information_gain"] is None  # no line rather than a NaN slope
    with pytest.raises(ValueError, match="several rows for one word occurrence"):
        interactive.hover_scatter(pd.concat([frame, frame]), pairs, {"information_gain": "info gain"})
    for model, factor in zip(first["models"], (1, 2)):  # each dot's weight is its word's
        assert model["y"] == pytest.approx([1 + factor * x for x in first["x"]["information_gain"]], abs=2e-3)
