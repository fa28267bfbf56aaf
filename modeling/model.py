"""GPT-2 in one readable file, as the paper and OpenAI's released code define it.

Pre-LN transformer blocks (LayerNorm at the input of each sub-block), an extra LayerNorm after the last block,
learned token and position embeddings, tanh-approximated GELU, LayerNorm eps 1e-5, an output head tied to the token
embedding, and init N(0, 0.02) with the residual output projections scaled by 1/sqrt(2 * n_layer).

Parameter names match Hugging Face's GPT2LMHeadModel (transformer.h.0.attn.c_attn.weight, ...), so checkpoint
conversion (modeling/hf.py) is a rename-free transpose of the Conv1D weights.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from modeling.loss import linear_cross_entropy


@dataclass(frozen=True)
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    # The embedding table is padded to a multiple of this (50257 -> 50304) for faster matmuls; padded rows are
    # never predicted because logits are cut back to vocab_size. 1 disables padding.
    pad_vocab_multiple: int = 64

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "pad_vocab_multiple"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPTConfig.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_multiple
        return (self.vocab_size + m - 1) // m * m


CONFIGS: dict[str, GPTConfig] = {
    # The four released GPT-2 sizes (heads from the released checkpoints; the paper lists layers and width).
    "gpt2": GPTConfig(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": GPTConfig(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": GPTConfig(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": GPTConfig(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    # Small shapes for CPU runs, tests and demos.
    "tiny": GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=64),
    "mini": GPTConfig(block_size=256, n_layer=4, n_head=4, n_embd=256),
}


def get_config(name: str, **overrides: object) -> GPTConfig:
    """The named config with fields replaced by `overrides` (e.g. vocab_size from the tokenizer)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown model config {name!r}; valid names: {', '.join(CONFIGS)}")
    return dataclasses.replace(CONFIGS[name], **overrides)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v concatenated in that order
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied output head
        # -inf on the padding columns, added inside the head's matmul: padding ids get probability 0, so the loss can
        # run on the contiguous padded logits (no slicing copy) and never predicts them.
        pad_mask = torch.zeros(config.padded_vocab_size)
        pad_mask[config.vocab_size :] = float("-inf")
        self.register_buffer("logit_pad_mask", pad_mask, persistent=False)
        self._loss_scratch: dict = {}  # the fused loss's reused logits buffer (see modeling/loss.py)
        self.apply(self._init_weights)
        # GPT-2's scaled init: each block adds two residual branches, so N = 2 * n_layer.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """The parameter count the GPT-2 sizes are named by (OpenAI's corrected 124M/355M/774M/1558M): every
        parameter once (the tied head is the token embedding), position embeddings included, the vocabulary padding
        left out. Training and evaluation both report this count."""
        c = self.config
        return sum(p.numel() for p in self.parameters()) - (c.padded_vocab_size - c.vocab_size) * c.n_embd

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token: 6N + 12 * n_layer * seq_len * n_embd (PaLM appendix B; nanoGPT's estimate).

        Here N is what the matmuls touch, not num_params(): the tied token embedding once, as the output head, with its
        padding rows (they are multiplied too), and no position embeddings (a lookup). 6N covers the forward and
        backward matmuls, the second term the attention scores and weighted sum.
        """
        c = self.config
        matmul_params = sum(p.numel() for p in self.parameters()) - self.transformer.wpe.weight.numel()
        return 6 * matmul_params + 12 * c.n_layer * (seq_len or c.block_size) * c.n_embd

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """Final-LayerNorm output (B, T, n_embd) for token ids idx (B, T)."""
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab_size) for idx (B, T); with targets (B, T), the mean cross-entropy loss instead.

        Targets equal to -1 are ignored. In fp32 eager mode the loss is fused with the head (modeling/loss.py); under
        torch.compile, autocast or half-precision weights the plain path runs (the logits upcast to fp32 for the loss).
        """
        hidden = self.hidden_states(idx)
        if targets is None:
            return self.logits(hidden)[..., : self.config.vocab_size].contiguous()
        if (
            torch.compiler.is_compiling()
            or torch.is_autocast_enabled(hidden.device.type)
            or hidden.dtype != torch.float32
        ):
            return F.cross_entropy(self.logits(hidden).flatten(0, -2).float(), targets.reshape(-1), ignore_index=-1)
        bias = self._pad_bias(hidden.dtype)
        return linear_cross_entropy(hidden, self.lm_head.weight, bias, targets, self._loss_scratch)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Head output over the padded vocabulary; padding columns are -inf."""
        return F.linear(hidden, self.lm_head.weight, self._pad_bias(hidden.dtype))

    def _pad_bias(self, dtype: torch.dtype) -> torch.Tensor | None:
        if self.config.padded_vocab_size == self.config.vocab_size:
            return None
        return self.logit_pad_mask.to(dtype)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append max_new_tokens sampled tokens to idx (B, T). temperature 0 means greedy decoding."""
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.block_size :]
            logits = self.logits(self.hidden_states(context)[:, -1])[:, : self.config.vocab_size].float()
            if temperature == 0:
                next_token = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = F.softmax(logits, dim=-1)
                next_token = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat((idx, next_token), dim=1)
        return idx


def is_decayed(param_name: str) -> bool:
    """AdamW weight decay goes to the 2-D weights (Linear, Embedding) only, not to biases or LayerNorm.

    Decided by name, not by tensor rank, so it also holds for FSDP's flattened parameter views.
    """
    parts = param_name.split(".")
    return parts[-1] == "weight" and not any(p.startswith("ln_") for p in parts)


def configure_optimizer(
    named_params: list[tuple[str, nn.Parameter]],
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    device_type: str = "cpu",
) -> torch.optim.AdamW:
    """AdamW with weight decay on 2-D weights only (fused kernel on CUDA)."""
    seen: set[int] = set()
    decay, no_decay = [], []
    for name, p in named_params:
        if not p.requires_grad or id(p) in seen:  # the tied head shares wte's tensor
            continue
        seen.add(id(p))
        (decay if is_decayed(name) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **({"fused": True} if fused else {}))
