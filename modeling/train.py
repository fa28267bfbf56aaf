"""Train GPT-2 on llm.c token shards with Lightning: `train(TrainConfig(...))` in this process; `modeling.launch`
runs it as a child process or from the command line (`python -m modeling.launch`).

Run directory layout (out_dir):
  checkpoints/stepNNNNNNN.ckpt   Lightning checkpoints (model, optimizer, scheduler, data position, RNG); the two
                                 newest are kept, written atomically; `resume=True` continues from the newest
                                 readable one exactly
  logs/version_K/metrics.csv     CSVLogger (one version per launch); tensorboard/version_K/  TensorBoardLogger
  loss_curve.png, .svg           train and val loss by step
  model/                         final export: Hugging Face GPT2LMHeadModel files (+ tokenizer files when given)
  summary.json                   what the run did
"""

from __future__ import annotations

import json
import logging
import math
import re
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from modeling.data import TokenDataModule
from modeling.hf import save_pretrained
from modeling.lightning_module import AtomicCheckpointIO, GPTModule, NonFiniteLossError, export_state_dict
from modeling.model import GPT, Block, get_config
from modeling.plots import write_loss_curve
from tokenization.bpe import load_tokenizer

log = logging.getLogger(__name__)

# Dense bf16 peak FLOP/s per device, for MFU. H100 and H200 SXM share the same tensor cores.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


class SavableTokenizer(Protocol):
    eot_token: int

    def save(self, directory: str | Path) -> Any: ...


@dataclass
class TrainConfig:
    tokens_dir: str  # directory of train_*.bin / val_*.bin llm.c token shards
    out_dir: str
    model: str = "mini"  # a name from modeling.model.CONFIGS
    vocab_size: int | None = None  # None: the config's (50257); set it to the tokenizer's n_vocab
    block_size: int | None = None  # None: the config's context length
    max_steps: int | None = None
    max_tokens: int | None = None  # alternative to max_steps: steps = ceil(max_tokens / batch_tokens)
    batch_tokens: int = 512 * 1024  # the paper's 512 sequences x 1024 tokens
    micro_batch: int = 8
    lr: float = 6e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int | None = None  # None: 5% of the steps
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    dropout: float = 0.0
    val_interval: int = 250  # optimizer steps between val-loss evaluations
    val_batches: int = 20
    checkpoint_interval: int = 500
    log_interval: int = 10
    seed: int = 1337
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # "auto", "ddp", "fsdp" or any Lightning strategy name
    precision: str = "auto"  # "auto": bf16-mixed on GPU, 32-true on CPU
    compile: bool = False
    # True: the newest readable checkpoint in out_dir/checkpoints, an error when there is none; "auto": the same, or
    # step 0 when there is none; or a checkpoint path
    resume: bool | str = False
    peak_flops: float | None = None  # per device, for MFU; None: looked up for H100/H200/A100
    progress_bar: bool = False
    tokenizer_dir: str | None = None  # tokenizer files saved with the export; its end-of-text id becomes eos

    def __post_init__(self) -> None:
        """Every check that needs no data runs here, so that a bad parameter fails before tokenizing a corpus."""
        model_config = get_config(self.model)  # unknown names fail here, listing the valid ones
        if (self.max_steps is None) == (self.max_tokens is None):
            raise ValueError("give exactly one of max_steps and max_tokens")
        for name in (
            "max_steps",
            "max_tokens",
            "batch_tokens",
            "micro_batch",
            "val_interval",
            "checkpoint_interval",
            "log_interval",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {value}")
        world_size = planned_world_size(self.devices, self.num_nodes)
        if world_size is not None:  # train() checks again with the world size Lightning actually sets up
            gradient_accumulation(
                self.batch_tokens, self.micro_batch, self.block_size or model_config.block_size, world_size
            )
        if self.resume is not True and self.resume is not False and not isinstance(self.resume, str):
            raise ValueError(
                f"TrainConfig.resume must be true, false, 'auto' or a checkpoint path, got {self.resume!r}"
            )

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run: max_steps, or max_tokens in whole batches (rounded up)."""
        return self.max_steps or math.ceil(self.max_tokens / self.batch_tokens)  # type: ignore[operator]


@dataclass
class TrainResult:
    out_dir: str
    export_dir: str
    checkpoint: str
    loss_curve: str
    steps: int
    tokens: int
    params: int
    final_train_loss: float | None
    final_val_loss: float | None
    tokens_per_s: float | None
    mfu: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


KEPT_CHECKPOINTS = 2  # the newest and the one before: a checkpoint damaged on disk leaves one to resume from


def checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """The checkpoints in checkpoint_dir, highest step first (temporary files of interrupted writes ignored)."""
    found = [
        (int(m.group(1)), p)
        for p in Path(checkpoint_dir).glob("step*.ckpt")
        if (m := re.fullmatch(r"step(\d+)\.ckpt", p.name))
    ]
    return [p for _, p in sorted(found, reverse=True)]


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in checkpoint_dir."""
    found = checkpoints(checkpoint_dir)
    return found[0] if found else None


def unreadable_reason(checkpoint: Path) -> str | None:
    """Why a checkpoint file cannot be loaded (truncated, corrupted), or None when it is whole. torch writes a zip
    archive: a cut file has no central directory, a damaged one fails the CRC of some entry."""
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"entry {bad} fails its CRC check" if bad is not None else None


def resume_checkpoint(config: TrainConfig, verify: bool = True) -> Path | None:
    """The checkpoint that `config.resume` asks to continue from, or None to start at step 0.

    With resume=True or "auto", an unreadable newest checkpoint is skipped with a warning naming it, for the one
    before it. resume=True with no readable checkpoint is an error (a user asking to resume expects to resume);
    "auto" then starts from step 0, saying so. verify=False skips reading the files (a quick check of the request
    before expensive work).
    """
    if config.resume is False:
        return None
    if config.resume is not True and config.resume != "auto":
        path = Path(config.resume)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint to resume from {path} does not exist")
        if verify and (why := unreadable_reason(path)) is not None:
            raise ValueError(f"checkpoint to resume from {path} cannot be read ({why})")
        return path
    checkpoint_dir = Path(config.out_dir) / "checkpoints"
    found = checkpoints(checkpoint_dir)
    for path in found:
        why = unreadable_reason(path) if verify else None
        if why is None:
            return path
        log.warning("checkpoint %s cannot be read (%s); trying the one before it", path, why)
    if config.resume == "auto":
        log.info("resume='auto': no readable checkpoint in %s, training from step 0", checkpoint_dir)
        return None
    raise FileNotFoundError(
        f"resume=True, but {checkpoint_dir} holds no readable checkpoint"
        + (f" ({len(found)} unreadable: {', '.join(p.name for p in found)})" if found else "")
        + "; pass resume='auto' to start from step 0 when there is none, or resume=false"
    )


def planned_world_size(devices: int | str, num_nodes: int) -> int | None:
    """The number of processes Lightning will train on, where it is known without setting Lightning up (an int, a
    digit string or "auto" on a machine without CUDA; "auto" on a GPU machine means every visible GPU)."""
    if isinstance(devices, int) and devices > 0:
        return devices * num_nodes
    if isinstance(devices, str) and devices.isdigit() and int(devices) > 0:
        return int(devices) * num_nodes
    if devices == "auto":
        return (torch.cuda.device_count() or 1) * num_nodes
    return None


def _precision(precision: str) -> str:
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.cuda.is_available() else "32-true"


def _strategy(strategy: str) -> Any:
    if strategy == "fsdp":  # shard per transformer block, save full (HF-exportable) checkpoints
        from lightning.pytorch.strategies import FSDPStrategy

        return FSDPStrategy(auto_wrap_policy={Block}, state_dict_type="full")
    return strategy


def _peak_flops(config: TrainConfig) -> float | None:
    if config.peak_flops or not torch.cuda.is_available():
        return config.peak_flops
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_FLOPS.items() if key in name), None)


def gradient_accumulation(batch_tokens: int, micro_batch: int, block_size: int, world_size: int) -> int:
    per_pass = micro_batch * block_size * world_size
    if batch_tokens % per_pass:
        raise ValueError(
            f"batch_tokens={batch_tokens} is not a multiple of micro_batch x block_size x devices x nodes = "
            f"{micro_batch} x {block_size} x {world_size} = {per_pass}"
        )
    return batch_tokens // per_pass


def train(
    config: TrainConfig,
    tokenizer: SavableTokenizer | None = None,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train (or resume), then export the final model in Hugging Face format to out_dir/model.

    Runs in this process; devices > 1 with a DDP strategy relaunches this process's command for the other ranks, so
    call it from a script (or use modeling.launch.train_in_subprocess, which runs `python -m modeling.launch`).
    """
    if config.strategy.startswith("fsdp") and not torch.cuda.is_available():
        raise ValueError(
            f"strategy={config.strategy!r} needs CUDA GPUs (Lightning's FSDP does not run on the CPU); "
            "use strategy='ddp' for several CPU processes"
        )
    if tokenizer is None and config.tokenizer_dir is not None:
        tokenizer = load_tokenizer(config.tokenizer_dir)
    overrides: dict[str, Any] = {"dropout": config.dropout}
    if config.vocab_size is not None:
        overrides["vocab_size"] = config.vocab_size
    if config.block_size is not None:
        overrides["block_size"] = config.block_size
    model_config = get_config(config.model, **overrides)
    max_steps = config.total_steps
    out_dir = Path(config.out_dir)
    checkpoint_dir = out_dir / "checkpoints"
    data = TokenDataModule(config.tokens_dir, model_config.block_size, config.micro_batch, config.seed)

    resume_from = resume_checkpoint(config)

    L.seed_everything(config.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 for the fp32 matmuls left outside autocast
    trainer_args: dict[str, Any] = dict(
        accelerator="auto",
        devices=config.devices,
        num_nodes=config.num_nodes,
        precision=_precision(config.precision),
    )
    world_size = L.Trainer(
        **trainer_args,
        strategy=_strategy(config.strategy),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).world_size
    accumulate = gradient_accumulation(config.batch_tokens, config.micro_batch, model_config.block_size, world_size)
    warmup = config.warmup_steps if config.warmup_steps is not None else max_steps // 20

    module = GPTModule(
        asdict(model_config),
        lr=config.lr,
        max_steps=max_steps,
        warmup_steps=warmup,
        min_lr_ratio=config.min_lr_ratio,
        weight_decay=config.weight_decay,
        batch_tokens=config.batch_tokens,
        peak_flops=_peak_flops(config),
        compile=config.compile,
        log_interval=config.log_interval,
        on_step=on_step,
    )
    checkpointing = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="step{step:07d}",
        auto_insert_metric_name=False,
        every_n_train_steps=config.checkpoint_interval,
        monitor="step",
        mode="max",
        save_top_k=KEPT_CHECKPOINTS,
    )
    has_val = data.has_val
    trainer = L.Trainer(
        **trainer_args,
        strategy=_strategy(config.strategy),
        max_steps=max_steps,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=config.grad_clip,
        val_check_interval=config.val_interval * accumulate,
        check_val_every_n_epoch=None,
        limit_val_batches=config.val_batches if has_val else 0,
        num_sanity_val_steps=0,
        logger=[CSVLogger(out_dir, name="logs"), TensorBoardLogger(out_dir, name="tensorboard")],
        callbacks=[checkpointing],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=out_dir,
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
    )
    log.info(
        "training %s (%.1fM params) for %d steps of %d tokens (%d micro-batches of %d x %d on %d devices)",
        config.model,
        module.model.num_params() / 1e6,
        max_steps,
        config.batch_tokens,
        accumulate,
        config.micro_batch,
        model_config.block_size,
        world_size,
    )
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    except NonFiniteLossError as err:
        last_good = latest_checkpoint(checkpoint_dir)
        raise RuntimeError(
            f"training stopped: {err}; last good checkpoint: {last_good or 'none written yet'} "
            f"(lower the learning rate or resume from it)"
        ) from err

    final_val = None
    if has_val and module.last_val_step != trainer.global_step:
        trainer.validate(module, datamodule=data, verbose=False)
    if has_val:
        final_val = trainer.callback_metrics["val/loss"].item()
    final_checkpoint = checkpoint_dir / f"step{trainer.global_step:07d}.ckpt"
    trainer.save_checkpoint(final_checkpoint)

    export_dir, loss_curve = out_dir / "model", out_dir / "loss_curve.png"
    if trainer.is_global_zero:
        gpt_config, state = export_state_dict(final_checkpoint)
        model = GPT(gpt_config)
        model.load_state_dict(state)
        save_pretrained(model, export_dir, eos_token_id=tokenizer.eot_token if tokenizer is not None else None)
        if tokenizer is not None:
            tokenizer.save(export_dir)
        write_loss_curve(out_dir / "logs", loss_curve, title=f"{config.model} loss")
    result = TrainResult(
        out_dir=str(out_dir),
        export_dir=str(export_dir),
        checkpoint=str(final_checkpoint),
        loss_curve=str(loss_curve),
        steps=trainer.global_step,
        tokens=trainer.global_step * config.batch_tokens,
        params=module.model.num_params(),
        final_train_loss=module.last_train_loss,
        final_val_loss=final_val,
        tokens_per_s=(tps := module.mean_tokens_per_s()),
        mfu=module.mfu(tps) if tps else None,
    )
    if trainer.is_global_zero:
        (out_dir / "summary.json").write_text(
            json.dumps({"config": asdict(config), "result": result.to_dict()}, indent=2) + "\n"
        )
    return result
