"""Read and write Hugging Face `GPT2LMHeadModel` checkpoint directories.

HF stores the four projection matrices as Conv1D weights of shape (in, out); our nn.Linear weights are (out, in), so
exactly those are transposed. The causal-mask buffers (attn.bias, attn.masked_bias) of older checkpoints are skipped,
and the head is tied to wte, so lm_head.weight is never stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from corpus.files import write_atomic
from modeling.model import GPT, GPTConfig

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


def config_from_hf(hf: dict, pad_vocab_multiple: int = 64) -> GPTConfig:
    """GPTConfig from a GPT-2 config.json; rejects settings our model does not implement."""
    if hf.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"config.json has model_type={hf.get('model_type')!r}, expected 'gpt2'")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in TANH_GELUS:
        raise ValueError(f"config.json activation_function={activation!r}; only tanh GELU ({TANH_GELUS}) is supported")
    if hf.get("n_inner") not in (None, 4 * hf["n_embd"]):
        raise ValueError(f"config.json n_inner={hf['n_inner']} unsupported; the MLP width is 4 * n_embd")
    if not hf.get("tie_word_embeddings", True):
        raise ValueError("config.json sets tie_word_embeddings=false; GPT-2's output head is tied to wte")
    return GPTConfig(
        block_size=hf["n_positions"],
        vocab_size=hf["vocab_size"],
        n_layer=hf["n_layer"],
        n_head=hf["n_head"],
        n_embd=hf["n_embd"],
        layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        pad_vocab_multiple=pad_vocab_multiple,
    )


def _read_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    if (path / "model.safetensors").is_file():
        return load_file(path / "model.safetensors")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for f in files for k, v in load_file(path / f).items()}
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{path} has no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def from_pretrained(path: str | Path, pad_vocab_multiple: int = 64) -> GPT:
    """Load a GPT2LMHeadModel (or GPT2Model) checkpoint directory into our GPT, in eval mode on the CPU."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: not a Hugging Face checkpoint directory")
    config = config_from_hf(json.loads(config_file.read_text()), pad_vocab_multiple)
    hf_weights = _read_hf_weights(path)

    model = GPT(config)
    ours = model.state_dict()
    loaded: set[str] = set()
    for hf_key, tensor in hf_weights.items():
        if hf_key.endswith((".attn.bias", ".attn.masked_bias")) or hf_key == "lm_head.weight":
            continue  # causal-mask buffers; the tied head (checked below)
        key = hf_key if hf_key.startswith("transformer.") else f"transformer.{hf_key}"  # GPT2Model saves no prefix
        if key not in ours:
            raise ValueError(f"{path}: unexpected weight {hf_key!r} for a GPT-2 model")
        if key.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        target = ours[key]
        if key == "transformer.wte.weight":  # our table may be padded; the padding rows keep their init
            target = target[: config.vocab_size]
        if tensor.shape != target.shape:
            raise ValueError(f"{path}: {hf_key} has shape {tuple(tensor.shape)}, expected {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(tensor)
        loaded.add(key)
    missing = {k for k in ours if k != "lm_head.weight"} - loaded
    if missing:
        raise ValueError(f"{path}: weights missing from the checkpoint: {sorted(missing)}")
    head = hf_weights.get("lm_head.weight")
    if head is not None and not torch.equal(
        head, hf_weights.get("transformer.wte.weight", hf_weights.get("wte.weight"))
    ):
        raise ValueError(f"{path}: lm_head.weight differs from wte.weight; GPT-2's output head is tied")
    return model.eval()


def hf_config(config: GPTConfig, eos_token_id: int | None = None) -> dict:
    """The config.json transformers needs to rebuild this model as a GPT2LMHeadModel."""
    eos = config.vocab_size - 1 if eos_token_id is None else eos_token_id  # GPT-2's <|endoftext|> is the last id
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "layer_norm_epsilon": config.layer_norm_eps,
        "initializer_range": 0.02,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
    }


def save_pretrained(model: GPT, path: str | Path, eos_token_id: int | None = None) -> Path:
    """Write config.json + model.safetensors that transformers.GPT2LMHeadModel.from_pretrained loads.

    Files are written under temporary names and renamed, so an interrupted export never leaves a half-written file.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = model.config
    weights: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight":
            continue  # tied to wte
        tensor = tensor.detach().to("cpu", torch.float32)
        if key == "transformer.wte.weight":
            tensor = tensor[: config.vocab_size]  # drop the padding rows
        if key.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        weights[key] = tensor.contiguous().clone()
    write_atomic(path / "model.safetensors", lambda tmp: save_file(weights, tmp, metadata={"format": "pt"}))
    text = json.dumps(hf_config(config, eos_token_id), indent=2) + "\n"
    write_atomic(path / "config.json", lambda tmp: tmp.write_text(text))
    return path
