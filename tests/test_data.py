"""cwi.data on the offline pack, and its behaviour when files are missing or malformed."""

import re

import pandas as pd
import pytest

from cwi import data

STANDARD_SPLITS = {
    "stsb": {"train": 5749, "dev": 1500, "test": 1379},
    "sickr": {"train": 4500, "trial": 500, "test": 4927},
    "sts12": {"test": 3108},
    "sts13": {"test": 1500},
    "sts14": {"test": 3750},
    "sts15": {"test": 3000},
    "sts16": {"test": 1186},
}


@pytest.mark.parametrize("name", sorted(STANDARD_SPLITS))
def test_sts_row_counts_of_standard_splits(data_dir, name):
    frame = data.load_sts(name)
    assert list(frame.columns) == data.STS_COLUMNS
    assert frame["split"].value_counts().to_dict() == STANDARD_SPLITS[name]
    assert frame["score"].dtype == float
    assert frame["score"].between(0, 5).all()
    assert (frame["sentence1"].str.len() > 0).all() and (frame["sentence2"].str.len() > 0).all()


def test_sentences_with_quotes_are_read_verbatim(data_dir):
    # The TSVs have no quoting: a quote-aware reader would merge rows.
    frame = data.load_sts("sts14")
    assert frame["sentence1"].str.contains('"').any()
    assert len(frame) == 3750


def test_nli(data_dir):
    frame = data.load_nli()
    assert list(frame.columns) == data.NLI_COLUMNS
    counts = frame.groupby(["source", "split"]).size().to_dict()
    assert counts == {
        ("snli", "dev"): 9842,
        ("snli", "test"): 9824,
        ("sick", "train"): 4500,
        ("sick", "trial"): 500,
        ("sick", "test"): 4927,
    }
    assert set(frame["label"]) == {"entailment", "neutral", "contradiction"}


def test_wiki(data_dir):
    sentences = data.load_wiki()
    assert len(sentences) == 910_612
    assert all(sentences[:1000]) and sentences[0] == sentences[0].strip()
    assert data.load_wiki(limit=5) == sentences[:5]
    assert data.load_wiki(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        data.load_wiki(limit=-1)


def test_unknown_sts_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="stsb, sickr, sts12"):
        data.load_sts("sts17")


def test_missing_file_offline_names_file_variable_and_hub_id(tmp_path, monkeypatch):
    monkeypatch.setenv("CWI_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_sts("stsb")  # HF_HUB_OFFLINE=1 (conftest): the real datasets call fails
    message = str(info.value)
    assert str(tmp_path / "sts" / "stsb.tsv") in message
    assert "CWI_DATA_DIR" in message and "mteb/stsbenchmark-sts" in message
    assert not (tmp_path / "sts" / "stsb.tsv").exists(), "a failed fetch must not leave a file"


def test_missing_wiki_offline_names_the_hub_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("CWI_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataNotFoundError, match="princeton-nlp/datasets-for-simcse"):
        data.load_wiki(limit=10)


class FakeDatasets:
    """Stands in for the `datasets` module: returns Hub-shaped rows, records calls."""

    def __init__(self, rows_by_split):
        self.rows_by_split = rows_by_split
        self.calls = []

    def load_dataset(self, dataset_id, config=None, split=None):
        self.calls.append((dataset_id, split))
        return self.rows_by_split[split]


def test_hub_fallback_writes_the_pack_layout(tmp_path, monkeypatch):
    import sys

    rows = {
        "test": [
            {"sentence1": 'A "quoted" man.', "sentence2": "A\tman.", "score": 4.2},
            {"sentence1": "Cats.", "sentence2": "Dogs.", "score": 0.5},
        ]
    }
    fake = FakeDatasets(rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.setenv("CWI_DATA_DIR", str(tmp_path))
    frame = data.load_sts("sts13")
    assert fake.calls == [("mteb/sts13-sts", "test")]
    assert (tmp_path / "sts" / "sts13.tsv").exists()
    assert frame["sentence1"].tolist() == ['A "quoted" man.', "Cats."]
    assert frame["sentence2"].tolist() == ["A man.", "Dogs."]  # tab inside a field -> space
    assert frame["score"].tolist() == [4.2, 0.5]
    # A second load reads the written file and does not fetch again.
    data.load_sts("sts13")
    assert len(fake.calls) == 1


def test_hub_fallback_drops_unlabelled_nli_pairs(tmp_path, monkeypatch):
    import sys

    row = {"premise": "A dog runs.", "hypothesis": "An animal moves."}
    fake = FakeDatasets(
        {
            "train": [dict(row, label=0), dict(row, label=-1)],
            "validation": [dict(row, label=2)],
            "test": [dict(row, label=1)],
        }
    )
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.setenv("CWI_DATA_DIR", str(tmp_path))
    frame = data.load_nli()
    assert frame[["split", "label"]].values.tolist() == [
        ["train", "entailment"],
        ["dev", "contradiction"],
        ["test", "neutral"],
    ]


def test_corpora_are_named_and_unknown_ones_say_how_to_add_one(data_dir):
    assert data.load_corpus("wiki", 5) == data.load_wiki(limit=5)
    with pytest.raises(ValueError, match="unknown corpus 'books'.*wiki.*CORPORA"):
        data.load_corpus("books")


# --- malformed files: every one refused at the door with its path:line ----------------------------

STS_HEADER = "split\tsubset\tscore\tsentence1\tsentence2\n"
GOOD_ROW = "test\tnews\t4.2\tA man plays a guitar.\tA man is playing guitar.\n"


@pytest.mark.parametrize("case, body, line, what", [
    ("short row", GOOD_ROW + "test\tnews\t3.0\tA row of four fields.\n", 3, "4 tab-separated fields, expected 5"),
    ("long row", GOOD_ROW * 2 + "test\tnews\t3.0\tOne.\tTwo.\tThree.\n", 4, "6 tab-separated fields, expected 5"),
    ("non-numeric score", "test\tnews\tabout 4\tOne.\tTwo.\n", 2, "score 'about 4' is not a number from 0 to 5"),
    ("score out of range", GOOD_ROW + "test\tnews\t7.5\tOne.\tTwo.\n", 3, "score '7.5' is not a number from 0 to 5"),
    ("not a number", GOOD_ROW + "test\tnews\tnan\tOne.\tTwo.\n", 3, "score 'nan' is not a number"),
    ("empty sentence", GOOD_ROW + "test\tnews\t3.0\tOne.\t \n", 3, "field 'sentence2' is empty"),
])
def test_a_malformed_sts_row_is_refused_with_its_line(tmp_path, monkeypatch, case, body, line, what):
    path = tmp_path / "sts" / "stsb.tsv"
    path.parent.mkdir()
    path.write_text(STS_HEADER + body, encoding="utf-8")
    monkeypatch.setenv("CWI_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataFormatError) as info:
        data.load_sts("stsb")
    assert str(info.value).startswith(f"{path}:{line}: {what}"), case
    assert "Correct the file" in str(info.value)


def test_bad_utf8_an_empty_file_and_a_wrong_header_are_refused_with_their_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CWI_DATA_DIR", str(tmp_path))
    path = tmp_path / "sts" / "stsb.tsv"
    path.parent.mkdir()
    path.write_bytes((STS_HEADER + GOOD_ROW * 2).encode() + b"test\tnews\t1.0\tCaf\xe9.\tA caf\xc3\xa9.\n")
    with pytest.raises(data.DataFormatError, match=rf"^{re.escape(str(path))}:4: byte 0xe9 is not UTF-8"):
        data.load_sts("stsb")
    path.write_bytes(b"")
    with pytest.raises(data.DataFormatError, match=rf"^{re.escape(str(path))}:1: the file is empty"):
        data.load_sts("stsb")
    path.write_text("a\tb\n" + GOOD_ROW)
    with pytest.raises(data.DataFormatError, match=rf"^{re.escape(str(path))}:1: the header is \['a', 'b'\]"):
        data.load_sts("stsb")
    nli = tmp_path / "nli" / "nli.tsv"
    nli.parent.mkdir()
    nli.write_text("source\tsplit\tlabel\tpremise\thypothesis\n"
                   "snli\tdev\tentailment\tA.\tB.\nsnli\tdev\tmaybe\tA.\tB.\n")
    with pytest.raises(data.DataFormatError, match=rf"^{re.escape(str(nli))}:3: label 'maybe' is not one of"):
        data.load_nli()


def test_a_corpus_file_that_is_not_utf8_or_empty_is_refused_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CWI_DATA_DIR", str(tmp_path))
    folder = tmp_path / "wiki"
    folder.mkdir()
    for name in data.WIKI_PACK_FILES:
        (folder / name).write_text("One sentence.\nAnother one.\n")
    bad = folder / data.WIKI_PACK_FILES[1]
    bad.write_bytes(b"Fine.\n\nAlso fine.\nNot \xff fine.\n")
    with pytest.raises(data.DataFormatError, match=rf"^{re.escape(str(bad))}:4: byte 0xff is not UTF-8"):
        data.load_wiki()
    bad.write_bytes(b"")
    with pytest.raises(data.DataFormatError, match=rf"^{re.escape(str(bad))}:1: the file is empty"):
        data.load_wiki()
    bad.write_bytes(b"\n  \n\t\r\n\n")  # before: accepted, its share silently taken from the other files
    with pytest.raises(data.DataFormatError, match=rf"^{re.escape(str(bad))}:1: the file has no sentence, only blank"):
        data.load_wiki()


def test_a_blank_last_line_and_windows_line_ends_are_no_fault(tmp_path, monkeypatch):
    monkeypatch.setenv("CWI_DATA_DIR", str(tmp_path))
    path = tmp_path / "sts" / "stsb.tsv"
    path.parent.mkdir()
    path.write_bytes((STS_HEADER + GOOD_ROW + "\n").replace("\n", "\r\n").encode())
    frame = data.load_sts("stsb")
    assert frame["sentence2"].tolist() == ["A man is playing guitar."] and frame["score"].tolist() == [4.2]


def test_no_training_triplet_holds_a_sentence_of_any_sts_set(data_dir):
    """On the data pack itself: SNLI shares image captions with STS-B (and others); those triplets are dropped.

    Checked with a stricter comparison than the filter's own (letters and digits only), so near-duplicates that
    differ in case, punctuation or spacing count as the same sentence.
    """
    from cwi import config, runs

    def letters(sentence: str) -> str:
        return re.sub(r"[^a-z0-9]", "", sentence.lower())

    smoke = config.get_profile("smoke")
    triplets = runs.training_examples(smoke, True, smoke.finetune.sup)
    evaluated = set()
    for name in data.STS_DATASETS:
        frame = data.load_sts(name)
        evaluated |= {letters(s) for s in pd.concat([frame["sentence1"], frame["sentence2"]])}
    assert not [t for t in triplets if any(letters(s) in evaluated for s in t)]
    overlap = data.triplet_overlap()
    assert overlap.loc["any", "triplets"] > 0  # the data do overlap: the filter has work to do
    assert len(triplets) == overlap.loc["any", "of"] - overlap.loc["any", "triplets"]
    assert (overlap["triplets"] <= overlap.loc["any", "triplets"]).all()


def test_triplets_pair_each_premise_s_ith_entailed_with_its_ith_contradicting(monkeypatch):
    rows = [("snli", "b premise", "entailment", "b e1"), ("snli", "b premise", "neutral", "b n1"),
            ("snli", "b premise", "contradiction", "b c1"), ("snli", "b premise", "entailment", "b e2"),
            ("snli", "a premise", "contradiction", "a c1"), ("snli", "a premise", "entailment", "a e1"),
            ("snli", "a premise", "contradiction", "a c2"), ("snli", "c premise", "entailment", "c e1"),
            ("sick", "a premise", "entailment", "sick row")]
    frame = pd.DataFrame(rows, columns=["source", "premise", "label", "hypothesis"]).assign(split="train")
    monkeypatch.setattr(data, "load_nli", lambda: frame)
    # Premises sorted; a premise with no contradiction (c) or an unmatched extra hypothesis (b e2, a c2) adds nothing.
    assert data.snli_triplets() == [("a premise", "a e1", "a c1"), ("b premise", "b e1", "b c1")]
    assert data.snli_triplets(exclude={"a c1"}) == [("b premise", "b e1", "b c1")]
