import warnings

import torch

from course import text_classifier
from course.models import embed_texts, load_minilm, quiet_libraries


def test_tiny_classifier_reads_tokenizer_output_and_repeats_with_its_seed():
    tokenizer = load_minilm()[0]
    batch = tokenizer(["my invoice is wrong", "I cannot log in"], padding=True, return_tensors="pt")
    assert "token_type_ids" in batch
    first, again = text_classifier.tiny_classifier(3, seed=4), text_classifier.tiny_classifier(3, seed=4)
    assert not first.training
    with torch.inference_mode():
        logits = first(**batch)
        assert logits.shape == (2, 3)
        assert torch.equal(logits, again(**batch))
        assert not torch.equal(logits, text_classifier.tiny_classifier(3, seed=5)(**batch))
    assert len(first.transformer.encoder.layer) == 3


def test_padding_does_not_change_the_mean_pooled_logits():
    tokenizer = load_minilm()[0]
    model = text_classifier.tiny_classifier(2, seed=1)
    texts = ["short", "a much longer ticket that makes the short one padded in its batch"]
    with torch.inference_mode():
        together = model(**tokenizer(texts, padding=True, return_tensors="pt"))
        alone = torch.cat([model(**tokenizer([text], return_tensors="pt")) for text in texts])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_minilm_classifier_trains_a_copy_never_the_shared_model():
    before = embed_texts(["refund my order"])
    model = text_classifier.minilm_classifier(6)
    assert model.transformer.pooler is None and len(model.transformer.encoder.layer) == 6
    shared = {parameter.data_ptr() for parameter in load_minilm()[1].parameters()}
    assert not shared & {parameter.data_ptr() for parameter in model.parameters()}
    with torch.no_grad():
        for parameter in model.transformer.parameters():
            parameter.add_(1.0)
    torch.testing.assert_close(torch.from_numpy(embed_texts(["refund my order"])), torch.from_numpy(before))


def test_dynamic_quantisation_is_silent_after_quiet_libraries():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()  # what importing course.text_classifier (or loading MiniLM) does
        quantised = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        quantised(torch.ones(1, 8))
    assert caught == []
    assert isinstance(quantised[0], torch.ao.nn.quantized.dynamic.Linear)

