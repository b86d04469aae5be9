"""cwi.models and cwi.encoders: the registry, pooling, encoding and the differentiable forward."""


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


def test_hub_model_offline_names_the_id_and_the_offline_profiles():
    with pytest.raises(models.ModelNotAvailableError, match="(?s)princeton-nlp/unsup-simcse-bert-base-uncased.*offline profiles"):
        models.load_encoder("princeton-nlp/unsup-simcse-bert-base-uncased")


def test_pooling_by_hand():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert encoders.pool(hidden, mask, "mean").tolist() == [[2.0, 3.0]]
    assert encoders.pool(hidden, mask, "cls").tolist() == [[1.0, 2.0]]
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
