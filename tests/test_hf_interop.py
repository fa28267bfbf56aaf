"""Our GPT and transformers' GPT2LMHeadModel agree (fp32 logits within 1e-5) after conversion in both directions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from modeling.hf import from_pretrained, save_pretrained
from modeling.model import GPT, GPTConfig

SMALL = dict(vocab_size=300, n_positions=48, n_embd=64, n_layer=3, n_head=4)


def _hf_model(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**SMALL, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    with torch.no_grad():  # HF zero-inits biases and sets LN to identity; randomize so every weight is tested
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.normal_(0, 0.1)
    return model.eval()


def _tokens(vocab: int = SMALL["vocab_size"], B: int = 3, T: int = 48) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("pad_vocab_multiple", [1, 64])
def test_hf_checkpoint_loads_with_same_logits(tmp_path: Path, pad_vocab_multiple: int) -> None:
    hf = _hf_model()
    hf.save_pretrained(tmp_path)
    ours = from_pretrained(tmp_path, pad_vocab_multiple=pad_vocab_multiple)
    idx = _tokens()
    with torch.no_grad():
        expected = hf(idx).logits
        got = ours(idx)
    assert got.shape == expected.shape == (3, 48, SMALL["vocab_size"])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_pytorch_bin_checkpoint_with_mask_buffers_loads(tmp_path: Path) -> None:
    """Old checkpoints: pytorch_model.bin, GPT2Model keys without the transformer. prefix, causal-mask buffers."""
    hf = _hf_model(seed=3)
    state = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    T = SMALL["n_positions"]
    for i in range(SMALL["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, tmp_path / "pytorch_model.bin")
    hf.config.to_json_file(tmp_path / "config.json")
    ours = from_pretrained(tmp_path)
    idx = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, rtol=0, atol=1e-5)


def test_our_export_loads_in_transformers_with_same_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ours = GPT(GPTConfig(block_size=48, vocab_size=300, n_layer=3, n_head=4, n_embd=64)).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.normal_(0, 0.1)
    save_pretrained(ours, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["activation_function"] == "gelu_new"
    assert config["vocab_size"] == 300 and config["tie_word_embeddings"] is True
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx), rtol=0, atol=1e-5)
    # and back again: the round trip is exact
    again = from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(again(idx), ours(idx), rtol=0, atol=0)


def test_bad_checkpoint_dirs_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_pretrained(tmp_path)
    GPT2Config(**SMALL).to_json_file(tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        from_pretrained(tmp_path)
    GPT2Config(**SMALL, activation_function="relu").to_json_file(tmp_path / "config.json")
    with pytest.raises(ValueError, match="activation_function"):
        from_pretrained(tmp_path)
