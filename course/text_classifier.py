"""A sentence classifier on the course's transformer, small enough to fine-tune on a CPU (notebook 07).

``MeanPoolingClassifier`` puts a linear head on a BERT-style transformer: the token vectors of
its last layer are averaged over the attention mask, as sentence-transformers does for
all-MiniLM-L6-v2, and the head turns that sentence vector into one score (logit) per class.
``minilm_classifier`` wraps a private copy of MiniLM, so the shared model that
``course.models.embed_texts`` uses is never trained; ``tiny_classifier`` wraps a small random
transformer that reads the same token ids, for tests that must train in a fraction of a second.
"""
from __future__ import annotations

import copy

import torch

from course.models import load_minilm, quiet_libraries

quiet_libraries()
# Imported here, not on first use: importing transformers' BERT imports torch._dynamo (which wraps
# torch.manual_seed once per process) and runs transformers' own __init__ a second time under
# another name. The grader imports the modules a notebook's tests use before it snapshots the
# kernel, so both happen then, and an honest notebook does not look as if it had changed torch
# or compiled code under a library's name.
from transformers import BertConfig, BertModel  # noqa: E402


class MeanPoolingClassifier(torch.nn.Module):
    """``transformer`` -> mean of the last layer's token vectors over the attention mask -> ``head`` (logits).

    ``transformer`` is a ``transformers`` BertModel: its transformer blocks are
    ``transformer.encoder.layer``, first to last. Call the classifier with a tokenizer's output,
    ``model(**tokenizer(texts, padding=True, return_tensors="pt"))``; it returns a tensor of
    shape ``(len(texts), num_labels)``.
    """

    def __init__(self, transformer: torch.nn.Module, num_labels: int):
        super().__init__()
        self.transformer = transformer
        self.head = torch.nn.Linear(transformer.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return self.head(pooled)


def minilm_classifier(num_labels: int, seed: int = 0) -> MeanPoolingClassifier:
    """A classifier on a copy of all-MiniLM-L6-v2 (6 transformer blocks) with a new head, in eval mode.

    The head's weights are drawn from ``seed``; every parameter starts trainable. MiniLM's
    pooler (a layer the mean pooling does not use) is left out.
    """
    transformer = copy.deepcopy(load_minilm()[1])
    transformer.pooler = None
    return _with_head(transformer, num_labels, seed)


def tiny_classifier(num_labels: int, seed: int = 0, layers: int = 3) -> MeanPoolingClassifier:
    """A classifier on a small random BERT (``layers`` blocks of width 32) that reads MiniLM's token ids, in eval mode.

    About a million parameters, almost all in the token embeddings: it trains in milliseconds,
    so tests can check a training loop's behaviour without fine-tuning MiniLM itself.
    """
    config = BertConfig(vocab_size=load_minilm()[0].vocab_size, hidden_size=32, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        transformer = BertModel(config, add_pooling_layer=False)
    return _with_head(transformer, num_labels, seed)


def _with_head(transformer: torch.nn.Module, num_labels: int, seed: int) -> MeanPoolingClassifier:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MeanPoolingClassifier(transformer, num_labels)
    return model.eval()

