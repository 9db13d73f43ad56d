"""Character-level autoregressive text models and sampling.

An autoregressive model factorises a sequence's probability left to right::

    p(x_1, ..., x_T) = prod_t p(x_t | x_<t)

Both models map token ids ``idx`` (B, T) int64 to next-token logits (B, T, V), where
``logits[:, t]`` scores ``x_{t+1}`` having seen ``x_1..x_t`` only. :class:`CharRNN` carries
the past in a recurrent state (``block_size = None``: any context length);
:class:`TinyTransformer` attends to at most ``block_size`` previous tokens through causal
self-attention. :func:`generate` samples from either.

See: book/05_applications/text_generation.ipynb.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.runtime import eval_mode

__all__ = ["CausalSelfAttention", "CharRNN", "TinyTransformer", "TransformerBlock", "generate"]


def _check_token_ids(idx: Tensor, vocab_size: int, owner: str) -> None:
    if not isinstance(idx, Tensor) or idx.ndim != 2:
        raise ValueError(f"{owner}: expected token ids of shape (B, T), got {tuple(getattr(idx, 'shape', ()))}")
    if idx.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{owner}: token ids must be an integer tensor (int64), got {idx.dtype}")
    if idx.numel() and bool(((idx < 0) | (idx >= vocab_size)).any()):
        raise ValueError(f"{owner}: token ids must lie in [0, {vocab_size}), got values from "
                         f"{int(idx.min())} to {int(idx.max())}")


class CharRNN(nn.Module):
    """Embedding -> multi-layer GRU or LSTM -> Linear to vocabulary logits.

    ``forward(idx)`` (B, T) -> logits (B, T, V). :meth:`forward_with_state` also returns the
    recurrent state, which :func:`generate` uses to feed one new token per step instead of
    re-reading the whole text. ``dropout`` acts between recurrent layers and before the head.
    See: book/05_applications/text_generation.ipynb.
    """

    block_size: int | None = None  # no maximum context: the state summarises the past

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256, num_layers: int = 2,
                 cell: str = "gru", dropout: float = 0.0) -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"unknown cell {cell!r}; expected 'gru' or 'lstm'")
        if min(vocab_size, embed_dim, hidden_size, num_layers) < 1:
            raise ValueError("vocab_size, embed_dim, hidden_size and num_layers must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.vocab_size, self.cell = vocab_size, cell
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        rnn_class = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn_class(embed_dim, hidden_size, num_layers, batch_first=True,
                             dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward_with_state(self, idx: Tensor, state=None) -> tuple[Tensor, object]:
        """Logits (B, T, V) and the final recurrent state (pass it back to continue the text)."""
        _check_token_ids(idx, self.vocab_size, "CharRNN")
        x = self.embedding(idx)  # (B, T, embed_dim)
        h, state = self.rnn(x, state)  # (B, T, hidden_size)
        return self.head(self.dropout(h)), state  # (B, T, V)

    def forward(self, idx: Tensor) -> Tensor:
        return self.forward_with_state(idx)[0]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t only sees positions <= t.

    For each head, with queries/keys/values ``Q, K, V`` of shape (T, d_head)::

        Attention(Q, K, V) = softmax(Q K^T / sqrt(d_head) + M) V,   M[t, s] = -inf if s > t else 0

    ``fused=True`` calls ``F.scaled_dot_product_attention(is_causal=True)`` (the same maths,
    faster and leaner); ``fused=False`` runs the explicit lines below, for reading.
    See: book/05_applications/text_generation.ipynb.
    """

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0, fused: bool = True) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.n_head, self.n_embd, self.dropout, self.fused = n_head, n_embd, dropout, fused
        self.qkv = nn.Linear(n_embd, 3 * n_embd)  # queries, keys and values of all heads at once
        self.proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        mask = torch.tril(torch.ones(block_size, block_size, dtype=torch.bool))  # True where s <= t
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        head_dim = C // self.n_head
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q = q.view(B, T, self.n_head, head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, head_dim).transpose(1, 2)  # (B, nh, T, hd)
        v = v.view(B, T, self.n_head, head_dim).transpose(1, 2)  # (B, nh, T, hd)
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)  # (B, nh, T, hd)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(head_dim)  # (B, nh, T, T)
            scores = scores.masked_fill(~self.causal_mask[:T, :T], float("-inf"))  # hide the future
            weights = self.attn_dropout(F.softmax(scores, dim=-1))  # each row sums to 1
            y = weights @ v  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side: (B, T, C)
        return self.resid_dropout(self.proj(y))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))`` (GPT-2 layout).

    See: book/05_applications/text_generation.ipynb.
    """

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0, fused: bool = True) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, dropout, fused)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd),
                                 nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))  # (B, T, C)
        return x + self.mlp(self.ln2(x))  # (B, T, C)


class TinyTransformer(nn.Module):
    """A decoder-only Transformer (a tiny GPT): token + learned position embeddings, pre-LN blocks, head.

    ``forward(idx)`` (B, T) -> logits (B, T, V) with T <= ``block_size``. ``tie_weights``
    shares the token embedding matrix with the output layer (Press & Wolf, 2017).
    ``fused_attention=False`` uses the explicit attention code path (same result).
    Initialisation as GPT-2: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer).
    See: book/05_applications/text_generation.ipynb.
    """

    def __init__(self, vocab_size: int, block_size: int = 128, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 128, dropout: float = 0.0, tie_weights: bool = True,
                 fused_attention: bool = True) -> None:
        super().__init__()
        if min(vocab_size, block_size, n_layer, n_head, n_embd) < 1:
            raise ValueError("vocab_size, block_size, n_layer, n_head and n_embd must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.vocab_size, self.block_size = vocab_size, block_size
        self.token_embedding = nn.Embedding(vocab_size, n_embd)
        self.position_embedding = nn.Embedding(block_size, n_embd)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(n_embd, n_head, block_size, dropout, fused_attention) for _ in range(n_layer)
        )
        self.ln_final = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)
        for block in self.blocks:  # residual branches: keep the variance of the stream O(1)
            nn.init.normal_(block.attn.proj.weight, 0.0, 0.02 / math.sqrt(2 * n_layer))
            nn.init.normal_(block.mlp[2].weight, 0.0, 0.02 / math.sqrt(2 * n_layer))
        if tie_weights:
            self.head.weight = self.token_embedding.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: Tensor) -> Tensor:
        _check_token_ids(idx, self.vocab_size, "TinyTransformer")
        T = idx.shape[1]
        if T > self.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size={self.block_size}; "
                             "crop the context to the last block_size tokens (generate() does this)")
        positions = torch.arange(T, device=idx.device)  # (T,)
        x = self.token_embedding(idx) + self.position_embedding(positions)  # (B, T, C)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.head(self.ln_final(x))  # (B, T, V)


def _sample_next(logits: Tensor, temperature: float, top_k: int | None,
                 generator: torch.Generator | None) -> Tensor:
    """One token per row from ``softmax(logits / temperature)`` restricted to the top k: (B, V) -> (B, 1)."""
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    probs = F.softmax(logits, dim=-1)  # (B, V)
    if generator is not None and generator.device != probs.device:  # draw where the generator lives
        return torch.multinomial(probs.to(generator.device), 1, generator=generator).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)


def generate(model: nn.Module, prompt_ids: Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Continue each prompt by sampling ``x_{t+1} ~ softmax(logits_t / temperature)`` one token at a time.

    prompt_ids: (B, T) int64 with T >= 1 (for one prompt use ``ids[None]``); returns
    (B, T + max_new_tokens), the prompt followed by the new tokens, on the model's device.
    ``temperature`` must be > 0 (below 1 sharpens, above 1 flattens); ``top_k`` keeps only
    the k largest logits (``top_k=1`` is greedy decoding). The context is cropped to the
    model's ``block_size``; models with ``forward_with_state`` (:class:`CharRNN`) are fed one
    token per step. Runs under ``torch.no_grad()`` in eval mode and restores the model's
    train/eval mode afterwards. Draws come from ``generator`` (same seed, same text).
    See: book/05_applications/text_generation.ipynb.
    """
    if not isinstance(prompt_ids, Tensor) or prompt_ids.ndim != 2 or prompt_ids.shape[1] < 1:
        raise ValueError(f"prompt_ids must be (B, T) int64 with T >= 1 (for one prompt use ids[None]), "
                         f"got shape {tuple(getattr(prompt_ids, 'shape', ()))}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    if not temperature > 0 or math.isinf(temperature):  # also rejects NaN
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}; for greedy decoding use top_k=1")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or a positive int, got {top_k!r}")
    device = next(model.parameters()).device
    ids = prompt_ids.to(device)
    block_size = getattr(model, "block_size", None)
    with eval_mode(model):
        with torch.no_grad():
            if hasattr(model, "forward_with_state"):  # recurrent: feed only the newest token
                logits, state = model.forward_with_state(ids)
                for step in range(max_new_tokens):
                    next_id = _sample_next(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
                    ids = torch.cat([ids, next_id], dim=1)
                    if step + 1 < max_new_tokens:
                        logits, state = model.forward_with_state(next_id, state)
            else:
                for _ in range(max_new_tokens):
                    context = ids if block_size is None else ids[:, -block_size:]  # (B, <= block_size)
                    logits = model(context)[:, -1, :]  # (B, V): the next token's scores
                    next_id = _sample_next(logits, temperature, top_k, generator)  # (B, 1)
                    ids = torch.cat([ids, next_id], dim=1)
    return ids
