"""The Lightning pieces of GPT-2 training: the LightningModule, the LR schedule and atomic checkpoint writes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from corpus.files import atomic_output
from modeling.model import GPT, GPTConfig, configure_optimizer


class NonFiniteLossError(FloatingPointError):
    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss is {loss} at step {step}")
        self.step, self.loss = step, loss


def lr_multiplier(step: int, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to min_lr_ratio at max_steps (step counts from 0)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint under a temporary name and rename it: a run killed mid-write keeps its last good one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_output(Path(path)) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


class GPTModule(L.LightningModule):
    """GPT-2 language-model training: AdamW, warmup + cosine LR, per-step loss / lr / tokens/s / MFU logging.

    MFU = tokens/s x flops_per_token / (peak FLOP/s x devices), with flops_per_token = 6N + 12 * n_layer * T * d
    (see GPT.flops_per_token). Logged only when the peak FLOP/s of the device is given.
    """

    def __init__(
        self,
        model_config: dict[str, Any],
        lr: float,
        max_steps: int,
        warmup_steps: int,
        min_lr_ratio: float = 0.1,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        batch_tokens: int = 524288,
        peak_flops: float | None = None,
        compile: bool = False,
        log_interval: int = 1,
        on_step: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["on_step", "compile", "peak_flops", "log_interval"])
        self.model = GPT(GPTConfig(**model_config))
        if compile:
            self.model.compile()  # compiles forward in place; state_dict keys stay unchanged
        self.on_step = on_step
        self.peak_flops = peak_flops
        self.flops_per_token = self.model.flops_per_token()
        self._loss_sum = torch.zeros(())
        self._micro_batches = 0
        self._step_started = self._val_started = time.perf_counter()
        self._last_step = 0
        self._step_times: list[float] = []
        self._step_lr = float("nan")  # the rate of the optimizer step being taken
        self.log_interval = log_interval
        self.last_train_loss: float | None = None
        self.last_val_step = -1

    def on_train_start(self) -> None:
        self._last_step = self.global_step  # 0, or the step a resumed run starts from
        self._step_started = time.perf_counter()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.model(x, y)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(step=self.global_step + 1, loss=loss.item())
        self._loss_sum = self._loss_sum.to(loss.device) + loss.detach()
        self._micro_batches += 1
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning steps the LR scheduler before on_train_batch_end, whose param_groups then hold the next step's
        # rate: the one this step uses is read here.
        self._step_lr = optimizer.param_groups[0]["lr"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step == self._last_step:
            return  # mid-accumulation: the optimizer has not stepped yet
        now = time.perf_counter()
        self._step_times.append(now - self._step_started)
        self.last_train_loss = (self._loss_sum / self._micro_batches).item()
        if self.global_step % self.log_interval == 0:
            interval = self._step_times[-self.log_interval :]
            tokens_per_s = self.hparams.batch_tokens * len(interval) / sum(interval)
            metrics = {
                "train/loss": self.last_train_loss,
                "train/lr": self._step_lr,
                "train/tokens": float(self.global_step * self.hparams.batch_tokens),
                "perf/tokens_per_s": tokens_per_s,
            }
            if self.peak_flops:
                metrics["perf/mfu"] = self.mfu(tokens_per_s)
            self._publish(metrics)
        self._loss_sum.zero_()
        self._micro_batches = 0
        self._last_step = self.global_step
        self._step_started = time.perf_counter()

    def mfu(self, tokens_per_s: float) -> float | None:
        if not self.peak_flops:
            return None
        return tokens_per_s * self.flops_per_token / (self.peak_flops * self.trainer.world_size)

    def mean_tokens_per_s(self) -> float | None:
        """Throughput over this process's steps, leaving out the first (compilation, allocator warm-up)."""
        steady = self._step_times[1:] or self._step_times
        return self.hparams.batch_tokens * len(steady) / sum(steady) if steady else None

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.model(x, y)
        self.log("val/loss", loss, on_step=False, on_epoch=True, sync_dist=True, logger=False)
        return loss

    def on_validation_start(self) -> None:
        self._val_started = time.perf_counter()

    def on_validation_end(self) -> None:  # keep validation time out of the next step's tokens/s
        self._step_started += time.perf_counter() - self._val_started

    def on_validation_epoch_end(self) -> None:
        if "val/loss" in self.trainer.callback_metrics:
            self._publish({"val/loss": self.trainer.callback_metrics["val/loss"].item()})
            self.last_val_step = self.global_step

    def _publish(self, metrics: dict[str, float]) -> None:
        """Send metrics to the loggers and the on_step callback under the number of optimizer steps taken."""
        if not self.trainer.is_global_zero:
            return
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)
        if self.on_step is not None:
            self.on_step({"step": float(self.global_step), **metrics})

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        optimizer = configure_optimizer(
            list(self.named_parameters()), h.lr, h.weight_decay, tuple(h.betas), self.device.type
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_multiplier(step, h.warmup_steps, h.max_steps, h.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # Exact resume: dropout draws from the global generators, so their states travel with the checkpoint.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states", {})
        if "torch" in states:
            torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


def export_state_dict(checkpoint_path: str | Path) -> tuple[GPTConfig, dict[str, torch.Tensor]]:
    """The GPT config and model weights stored in a Lightning checkpoint of GPTModule."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    config = GPTConfig(**checkpoint["hyper_parameters"]["model_config"])
    prefix = "model."
    state = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    return config, state
