"""cwi.models and cwi.encoders: the registry, pooling, encoding and the differentiable forward."""


import warnings

import numpy as np
import pytest
import torch

from cwi import encoders, models


def test_every_pair_names_registered_models():
    for name, pair in models.PAIRS.items():
        assert pair.finetuned in models.MODELS, name
        assert pair.pretrained is None or pair.pretrained in models.MODELS, name
        assert models.MODELS[pair.finetuned].contrastive
        assert pair.pretrained is None or not models.MODELS[pair.pretrained].contrastive


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'bert-tiny'.*all-MiniLM-L6-v2"):
        models.load_encoder("bert-tiny")


def test_hub_model_offline_names_the_id_and_the_offline_profiles(monkeypatch):
    # A Hub id that no cache holds (the hub_cache fixture holds the registry's).
    monkeypatch.setitem(models.MODELS, "princeton-nlp/not-cached", models.ModelSpec("hub", "princeton-nlp/not-cached",
                                                                                    "cls", True))
    with pytest.warns(UserWarning, match="no pinned revision"):
        with pytest.raises(models.ModelNotAvailableError, match="(?s)princeton-nlp/not-cached.*offline profiles"):
            models.load_encoder("princeton-nlp/not-cached")


HUB_MODELS = [name for name, spec in models.MODELS.items() if spec.kind == "hub"]


@pytest.mark.parametrize("name", HUB_MODELS)
def test_every_hub_model_loads_by_its_id_from_a_hub_shaped_cache(hub_cache, name):
    """The registry's own Hub path loads each model's Hub layout offline, at its pinned revision, with its pooling."""
    import hub_models
    from safetensors.torch import load_file

    spec = models.MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if spec.revision is None else "error")  # pinned models load without a warning
        encoder = models.load_encoder(name)
    assert encoder.revision == hub_models.fixture_revision(name)
    assert encoder.pooling == spec.pooling
    snapshot = hub_cache / "hub" / f"models--{name.replace('/', '--')}" / "snapshots" / encoder.revision
    stored = load_file(snapshot / "model.safetensors")
    prefix = next(p for p in ("bert.", "roberta.", "mpnet.", "") if any(k.startswith(p + "embeddings") for k in stored))
    weights = encoder.model.state_dict()
    assert all(torch.equal(weights[key], stored[prefix + key]) for key in weights), "weights differ from the checkpoint"
    batch = encoder.tokenize(["A man plays a guitar."])
    with torch.no_grad():
        out = encoder.model(**batch)
        vector = encoder.forward(batch["input_ids"], batch["attention_mask"])[0]
    first = out.last_hidden_state[0, 0]
    if spec.pooling == "cls":  # SimCSE's MLP: tanh(W h_[CLS] + b) with the checkpoint's weights
        dense = prefix + "pooler.dense."
        expected = torch.tanh(stored[dense + "weight"] @ first + stored[dense + "bias"])
    else:
        expected = {"cls_before_pooler": first, "mean": out.last_hidden_state[0].mean(0)}[spec.pooling]
    torch.testing.assert_close(vector, expected)


def test_cls_pooling_needs_trained_pooler_weights(hub_cache):
    encoder = models.load_encoder("princeton-nlp/sup-simcse-bert-base-uncased")
    assert encoder.pooling == "cls" and encoder.model.pooler is not None  # SimCSE ships its trained MLP
    with pytest.raises(ValueError, match="roberta-base ships no trained pooler.*cls_before_pooler"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models.load_encoder("roberta-base", pooling="cls")


def test_a_revision_is_a_commit_of_a_hub_model():
    with pytest.raises(ValueError, match="40-hex commit"):
        models.ModelSpec("hub", "org/model", "mean", False, revision="main")
    with pytest.raises(ValueError, match="40-hex commit"):
        models.ModelSpec("package", "pkg", "mean", False, revision="0" * 40)


def test_pooling_by_hand():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert encoders.pool(hidden, mask, "mean").tolist() == [[2.0, 3.0]]
    assert encoders.pool(hidden, mask, "cls_before_pooler").tolist() == [[1.0, 2.0]]
    with pytest.raises(ValueError, match="pooling"):
        encoders.pool(hidden, mask, "max")


def test_mean_pooling_of_a_tiny_model_by_hand(tiny_encoder):
    batch = tiny_encoder.tokenize(["a short one", "a somewhat longer sentence than that"])
    with torch.no_grad():
        hidden = tiny_encoder.model(**batch).last_hidden_state
        pooled = tiny_encoder.forward(batch["input_ids"], batch["attention_mask"])
    length = int(batch["attention_mask"][0].sum())
    np.testing.assert_allclose(pooled[0].numpy(), hidden[0, :length].mean(0).numpy(), rtol=1e-5, atol=1e-6)


def test_forward_from_input_embeddings_is_differentiable_and_equal(tiny_encoder):
    batch = tiny_encoder.tokenize(["gradients flow through embeddings"])
    embeddings = tiny_encoder.input_embeddings(batch["input_ids"]).detach().requires_grad_(True)
    out = tiny_encoder.forward(inputs_embeds=embeddings, attention_mask=batch["attention_mask"])
    with torch.no_grad():
        reference = tiny_encoder.forward(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(out.detach(), reference)
    out.sum().backward()
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0


def test_encode_keeps_input_order(tiny_encoder):
    sentences = ["one", "a much longer sentence here", "two words"]
    together = tiny_encoder.encode(sentences, batch_size=2)
    alone = np.stack([tiny_encoder.encode([s])[0] for s in sentences])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_minilm_loads_offline_with_mean_pooling():
    encoder = models.load_encoder("all-MiniLM-L6-v2")
    assert encoder.pooling == "mean"
    vectors = encoder.encode(["A man is playing a guitar.", "A man plays the guitar.", "The stock market fell."])
    assert vectors.shape == (3, 384)
    cos = vectors @ vectors.T / np.outer(np.linalg.norm(vectors, axis=1), np.linalg.norm(vectors, axis=1))
    assert cos[0, 1] > cos[0, 2] + 0.3


def test_a_checkpoint_without_pooler_loads_the_same_weights_every_time(tiny_encoder, tmp_path):
    # The book's SimCSE checkpoints have no pooler: none may be made up at load time,
    # or the attribution cache (keyed by the weights) would miss on every load.
    from transformers import BertModel

    BertModel(tiny_encoder.model.config, add_pooling_layer=False).save_pretrained(tmp_path)
    first, second = encoders.load_transformer(tmp_path).state_dict(), encoders.load_transformer(tmp_path).state_dict()
    assert not any(key.startswith("pooler") for key in first)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
