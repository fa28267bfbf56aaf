"""Cross-entropy of the output head, fused with the head's matmul.

The plain path (logits = h @ W.T, then F.cross_entropy) writes the (tokens x vocab) logits, a log-softmax copy of them,
a zero-filled gradient and the log-softmax gradient: four tensors of 400 MB each for 2,048 tokens of GPT-2's vocabulary,
each freshly allocated and page-faulted on the CPU. Here the gradient softmax(logits) - onehot(target) is computed in
place of the logits, in the forward pass, chunk by chunk over the tokens into one reused scratch buffer, and turned
straight into the gradients of the hidden states and of the (tied) head weight. The backward pass only scales them.
Same math as the plain path (checked to float rounding in tests/test_model.py); it does not change the model.
"""

from __future__ import annotations

import torch


class LinearCrossEntropy(torch.autograd.Function):
    """mean over targets != -1 of cross_entropy(hidden @ weight.T + bias, targets); gradients computed eagerly."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,  # (N, C)
        weight: torch.Tensor,  # (V, C)
        bias: torch.Tensor | None,  # (V,) or None; -inf on padding columns
        targets: torch.Tensor,  # (N,), -1 = ignored
        scratch: dict[tuple[torch.device, torch.dtype], torch.Tensor],
        chunk_tokens: int,
    ) -> torch.Tensor:
        wants_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        counted = targets != -1
        every_target_counted = bool(counted.all())
        rows = targets.clamp(min=0).unsqueeze(1)
        grad_hidden = torch.empty_like(hidden) if wants_grad else None
        grad_weight = torch.empty_like(weight) if wants_grad else None
        loss_sum = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.size(0), chunk_tokens):
            chunk = slice(start, start + chunk_tokens)
            h, t, keep = hidden[chunk], rows[chunk], counted[chunk]
            logits = _scratch(scratch, h.size(0), weight.size(0), hidden)
            if bias is None:
                torch.mm(h, weight.t(), out=logits)
            else:
                torch.addmm(bias, h, weight.t(), out=logits)
            lse = torch.logsumexp(logits, dim=1)
            nll = lse - logits.gather(1, t).squeeze(1)
            loss_sum += nll.sum() if every_target_counted else (nll * keep).sum()
            if not wants_grad:
                continue
            logits.sub_(lse.unsqueeze(1)).exp_()  # softmax, in place
            logits.scatter_add_(1, t, -keep.unsqueeze(1).to(logits.dtype))  # minus the one-hot target
            if not every_target_counted:
                logits.mul_(keep.unsqueeze(1))  # ignored tokens get no gradient
            torch.mm(logits, weight, out=grad_hidden[chunk])
            if start == 0:
                torch.mm(logits.t(), h, out=grad_weight)
            else:
                grad_weight.addmm_(logits.t(), h)
        scale = 1.0 / max(1, int(counted.sum()))
        if wants_grad:
            ctx.save_for_backward(grad_hidden.mul_(scale), grad_weight.mul_(scale))
        return loss_sum * scale

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_loss: torch.Tensor) -> tuple:  # type: ignore[override]
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_loss, grad_weight * grad_loss, None, None, None, None


def _scratch(
    cache: dict[tuple[torch.device, torch.dtype], torch.Tensor], n: int, v: int, like: torch.Tensor
) -> torch.Tensor:
    """An (n, v) view of a buffer kept across steps: reusing it saves the page faults of a fresh 400 MB tensor."""
    key = (like.device, like.dtype)
    buffer = cache.get(key)
    if buffer is None or buffer.numel() < n * v:
        buffer = cache[key] = torch.empty(n * v, device=like.device, dtype=like.dtype)
    return buffer[: n * v].view(n, v)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    scratch: dict[tuple[torch.device, torch.dtype], torch.Tensor],
    chunk_tokens: int = 1024,
) -> torch.Tensor:
    """Mean cross-entropy of hidden (..., C) through the head weight (V, C) against targets (...), -1 ignored.

    `scratch` holds the reused logits buffer (chunk_tokens x V); keep one per model, not shared between threads.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    return LinearCrossEntropy.apply(
        hidden.reshape(-1, hidden.size(-1)), weight, bias, targets.reshape(-1), scratch, chunk_tokens
    )
