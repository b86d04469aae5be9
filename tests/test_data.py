"""cwi.data on the offline pack, and its behaviour when files are missing."""

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
