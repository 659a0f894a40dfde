"""Flax embeddings and pre-training heads shared by the Transformer, ALBERT and ELECTRA
models (their layers are in ``blocks.py``); each tags its work with the terms of
``terms.py``."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn

from kernels.nn import cross_entropy, lift
from .blocks import INIT, ZEROS, Dense, Norm


class Embeddings(nn.Module):
    """Token (+ learned position, + token type) embeddings, optional norm and E->H projection.

    ``attend(x)`` is the tied output projection onto the vocabulary.
    """
    vocab: int
    emb_dim: int
    hidden: int
    max_len: int = 0        # 0: no learned position table (T5 uses relative bias)
    type_vocab: int = 0     # 0: no token-type table
    norm: bool = True
    eps: float = 1e-12

    def setup(self):
        self.word = self.param("word", INIT, (self.vocab, self.emb_dim))
        if self.max_len:
            self.pos = self.param("position", INIT, (self.max_len, self.emb_dim))
        if self.type_vocab:
            self.type_ = self.param("token_type", INIT, (self.type_vocab, self.emb_dim))
        if self.norm:
            self.ln = Norm(self.emb_dim, self.eps)
        if self.emb_dim != self.hidden:
            self.proj = Dense(self.emb_dim, self.hidden)

    def __call__(self, ids, type_ids=None):
        n = ids.shape[-1]
        with jax.named_scope("embed/lookup"):
            h = jnp.take(self.word, ids, axis=0)
            if self.max_len:
                h = h + self.pos[None, :n]
            if self.type_vocab:
                h = h + jnp.take(self.type_, type_ids, axis=0)
        if self.norm:
            with jax.named_scope("norm/embed"):
                h = self.ln(h)
        if self.emb_dim != self.hidden:
            with jax.named_scope("embed/proj"):
                h = self.proj(h)
        return h

    def attend(self, x):
        return jnp.einsum("...e,ve->...v", x, self.word)


class MLMHead(nn.Module):
    """BERT-style masked-LM head on gathered positions: dense, act, norm, tied decoder + bias."""
    hidden: int
    emb_dim: int
    vocab: int
    act: str
    eps: float

    @nn.compact
    def __call__(self, h, embeddings: Embeddings):
        from kernels.nn import activation
        with jax.named_scope("head/transform"):
            h = Dense(self.hidden, self.emb_dim, name="transform")(h)
        with jax.named_scope("head/act"):
            h = activation(self.act, h)
        with jax.named_scope("head/norm"):
            h = Norm(self.emb_dim, self.eps, name="ln")(h)
        with jax.named_scope("head/logits"):
            logits = embeddings.attend(h)
            return logits + lift(self.param("bias", ZEROS, (self.vocab,)), logits.ndim)


class SentenceHead(nn.Module):
    """Sentence-pair head on the first token, added to the MLM loss: pooler (dense H->H +
    tanh), classifier H->2, 2-way cross-entropy.  ``task`` names the classifier and loss
    terms: ``sop`` (ALBERT's sentence order) or ``nsp`` (BERT's next sentence)."""
    hidden: int
    task: str

    @nn.compact
    def __call__(self, h, labels, mlm_loss):
        with jax.named_scope("head/pooler"):
            pooled = jnp.tanh(Dense(self.hidden, self.hidden, name="pooler")(h[:, 0]))
        with jax.named_scope(f"head/{self.task}"):
            logits = Dense(self.hidden, 2, name="classifier")(pooled)
        with jax.named_scope(f"loss/{self.task}"):
            return mlm_loss + cross_entropy(logits, labels)
