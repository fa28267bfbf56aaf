"""The GPT-2 model: architecture facts, padded vocabulary, causality, loss, sampling, optimizer groups, sampling CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from modeling.model import CONFIGS, GPT, GPTConfig, configure_optimizer, get_config, is_decayed

SMALL = GPTConfig(block_size=32, vocab_size=100, n_layer=2, n_head=2, n_embd=32)  # padded to 128


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_model(seed: int = 0, **overrides: object) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(**{**SMALL.__dict__, **overrides})
    return GPT(config).eval()


def test_released_sizes_have_the_published_parameter_counts() -> None:
    expected = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}
    heads = {"gpt2": 12, "gpt2-medium": 16, "gpt2-large": 20, "gpt2-xl": 25}
    for name, count in expected.items():
        config = get_config(name, pad_vocab_multiple=1)
        assert (config.block_size, config.vocab_size, config.n_head) == (1024, 50257, heads[name])
        with torch.device("meta"):
            assert GPT(config).num_params() == count
            padded = GPT(get_config(name))  # vocabulary padded to a multiple of 64: the count is unchanged
            assert padded.config.padded_vocab_size > padded.config.vocab_size and padded.num_params() == count
    assert CONFIGS["gpt2"].padded_vocab_size == 50304
    with pytest.raises(ValueError, match="unknown model config 'gpt3'; valid names: gpt2, gpt2-medium"):
        get_config("gpt3")
    with pytest.raises(ValueError, match="not divisible by n_head"):
        GPTConfig(n_embd=100, n_head=3)


def test_architecture_and_init() -> None:
    model = GPT(GPTConfig(block_size=64, vocab_size=1000, n_layer=8, n_head=4, n_embd=256))
    assert model.lm_head.weight is model.transformer.wte.weight  # tied head
    block = model.transformer.h[0]
    assert block.ln_1.eps == model.transformer.ln_f.eps == 1e-5
    assert torch.all(block.attn.c_attn.bias == 0)
    std = lambda p: p.detach().std().item()  # noqa: E731
    assert std(block.mlp.c_fc.weight) == pytest.approx(0.02, rel=0.05)
    assert std(model.transformer.wpe.weight) == pytest.approx(0.02, rel=0.05)
    for proj in (block.attn.c_proj.weight, block.mlp.c_proj.weight):  # residual projections: 0.02 / sqrt(2 * 8)
        assert std(proj) == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    # tanh GELU and pre-LN, checked against a by-hand block
    x = torch.randn(2, 5, 256)
    h = x + block.attn(block.ln_1(x))
    fc = block.mlp.c_fc(block.ln_2(h))
    by_hand = h + block.mlp.c_proj(0.5 * fc * (1 + torch.tanh(math.sqrt(2 / math.pi) * (fc + 0.044715 * fc**3))))
    torch.testing.assert_close(block(x), by_hand, rtol=1e-5, atol=1e-5)


def test_logits_are_causal_unpadded_and_loss_is_cross_entropy() -> None:
    model = small_model()
    idx = torch.randint(0, 100, (2, 16))
    logits = model(idx)
    assert logits.shape == (2, 16, 100)  # the 28 padding columns are never returned
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 100
    torch.testing.assert_close(model(changed)[:, :10], logits[:, :10])  # the future does not leak backwards
    assert not torch.allclose(model(changed)[:, 10:], logits[:, 10:])
    targets = torch.randint(0, 100, (2, 16))
    targets[0, 3] = -1  # ignored
    loss = model(idx, targets)
    keep = targets.view(-1) >= 0
    torch.testing.assert_close(loss, F.cross_entropy(logits.view(-1, 100)[keep], targets.view(-1)[keep]))
    with pytest.raises(ValueError, match="exceeds block_size 32"):
        model(torch.zeros(1, 33, dtype=torch.long))


@pytest.mark.parametrize("pad_vocab_multiple", [64, 1])
@pytest.mark.parametrize("chunk_tokens", [1024, 5])
def test_fused_loss_matches_the_plain_head_and_cross_entropy(pad_vocab_multiple: int, chunk_tokens: int) -> None:
    """The fused head + loss (modeling/loss.py) gives the plain path's loss and gradients, ignored targets included."""
    from modeling.loss import linear_cross_entropy

    def loss_and_grads(fused: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model = small_model(pad_vocab_multiple=pad_vocab_multiple).train()
        idx = torch.randint(0, 100, (3, 16), generator=torch.Generator().manual_seed(1))
        targets = torch.randint(0, 100, (3, 16), generator=torch.Generator().manual_seed(2))
        targets[1, :7] = -1
        hidden = model.hidden_states(idx)
        if fused:
            bias = model._pad_bias(hidden.dtype)
            loss = linear_cross_entropy(hidden, model.lm_head.weight, bias, targets, {}, chunk_tokens=chunk_tokens)
        else:
            loss = F.cross_entropy(model.logits(hidden).flatten(0, 1), targets.view(-1), ignore_index=-1)
        (2.5 * loss).backward()  # a non-unit upstream gradient reaches both gradients
        return loss.detach(), {n: p.grad for n, p in model.named_parameters()}

    (fused_loss, fused_grads), (plain_loss, plain_grads) = loss_and_grads(True), loss_and_grads(False)
    torch.testing.assert_close(fused_loss, plain_loss, rtol=1e-6, atol=1e-6)
    assert fused_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    assert fused_grads["transformer.wte.weight"][100:].abs().sum() == 0  # padding rows are never pushed


def test_fused_loss_without_grad_and_a_model_call_agree() -> None:
    model = small_model()
    idx, targets = torch.randint(0, 100, (2, 16)), torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        loss = model(idx, targets)
        plain = F.cross_entropy(model(idx).flatten(0, 1), targets.view(-1))
    torch.testing.assert_close(loss, plain)
    assert not loss.requires_grad
    with torch.no_grad():  # half-precision weights take the plain path, with the loss in fp32
        half = small_model().to(torch.bfloat16)(idx, targets)
    assert half.dtype == torch.float32 and abs(half.item() - plain.item()) < 0.05
    with pytest.raises(ValueError, match="chunk_tokens must be >= 1"):
        from modeling.loss import linear_cross_entropy

        linear_cross_entropy(torch.zeros(2, 32), model.lm_head.weight, None, torch.zeros(2, dtype=torch.long), {}, 0)


def test_padding_does_not_change_the_model() -> None:
    padded, unpadded = small_model(pad_vocab_multiple=64), small_model(pad_vocab_multiple=1)
    unpadded.load_state_dict(
        {k: v[:100] if "wte" in k or "lm_head" in k else v for k, v in padded.state_dict().items()}
    )
    idx = torch.randint(0, 100, (2, 16))
    torch.testing.assert_close(padded(idx), unpadded(idx))


def test_generate_greedy_top_k_and_seeded_sampling() -> None:
    model = small_model()
    idx = torch.randint(0, 100, (2, 4))
    greedy = model.generate(idx, 6, temperature=0)
    manual = idx
    for _ in range(6):
        manual = torch.cat([manual, model(manual)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy, manual)
    assert torch.equal(model.generate(idx, 6, top_k=1), greedy)  # top-1 sampling is greedy
    a = model.generate(idx, 8, top_k=40, generator=torch.Generator().manual_seed(3))
    b = model.generate(idx, 8, top_k=40, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (2, 12) and int(a.max()) < 100  # padded ids never sampled
    # top-k: every sampled token is among the k most likely at its position
    k3 = model.generate(idx, 8, top_k=3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        allowed = model(k3[:, :-1]).topk(3).indices
    assert all(k3[i, t + 1] in allowed[i, t] for i in range(2) for t in range(3, 11))
    long = model.generate(torch.zeros(1, 30, dtype=torch.long), 10, temperature=0)  # slides past block_size
    assert long.shape == (1, 40)


def test_weight_decay_only_on_two_dimensional_weights() -> None:
    model = small_model()
    optimizer = configure_optimizer(list(model.named_parameters()), lr=1e-3, weight_decay=0.1)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert optimizer.defaults["betas"] == (0.9, 0.95)
    for name, p in model.named_parameters():  # the name rule (used under FSDP) agrees with the tensor rank
        assert is_decayed(name) == (p.dim() == 2), name


def test_flops_per_token() -> None:
    model = small_model(pad_vocab_multiple=1)
    n = sum(p.numel() for p in model.parameters()) - 32 * 32  # position embeddings left out
    assert model.flops_per_token() == 6 * n + 12 * 2 * 32 * 32
    with torch.device("meta"):
        gpt2 = GPT(get_config("gpt2"))  # N = 124,439,808 + 47 padding rows x 768 - 1024 x 768 position embeddings
    assert gpt2.flops_per_token() == 6 * 123_689_472 + 12 * 12 * 1024 * 768


def test_sample_command(tmp_path: Path, gpt2_bpe_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modeling.hf import save_pretrained
    from modeling.sample import main
    from tokenization.bpe import load_gpt2

    torch.manual_seed(0)
    save_pretrained(GPT(GPTConfig(block_size=64, n_layer=1, n_head=2, n_embd=32)), tmp_path)
    load_gpt2(gpt2_bpe_dir / "encoder.json", gpt2_bpe_dir / "vocab.bpe").save(tmp_path)
    args = ["--checkpoint", str(tmp_path), "--prompt", "Hello world", "--max-new-tokens", "5", "--num-samples", "2"]
    main(args)
    out = capsys.readouterr().out
    assert out.count("Hello world") == 2 and "======== sample 2 ========" in out
