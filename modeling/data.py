"""Training data: llm.c-format token shards -> random context windows, reproducible from a seed and resumable.

Shards are llm.c's format (`tokenization.shard_format`), written by `tokenization.encode.encode_corpus`.

Micro-batch number b on rank r is drawn from its own generator seeded with (seed, r, b), so the stream needs no
hidden state: its position is just the next b, which the DataModule saves in every Lightning checkpoint and restores
on resume. A resumed run therefore sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from tokenization.shard_format import read_token_shard, write_token_shard

__all__ = [
    "read_token_shard",
    "write_token_shard",
    "find_shards",
    "RandomWindows",
    "SequentialWindows",
    "TokenDataModule",
]


def find_shards(tokens_dir: str | Path, split: str) -> list[Path]:
    """Sorted shard files of a split ('train' or 'val'): train_000000.bin, ... (also llm.c's *_train_000000.bin)."""
    tokens_dir = Path(tokens_dir)
    if not tokens_dir.is_dir():
        raise FileNotFoundError(f"token shard directory {tokens_dir} does not exist")
    return sorted(p for p in tokens_dir.glob(f"*{split}_*.bin") if p.name.split("_")[-2].endswith(split))


class RandomWindows(IterableDataset):
    """Endless micro-batches (x, y, b) of uniformly random windows of block_size + 1 tokens across all shards."""

    def __init__(
        self, shards: list[Path], block_size: int, micro_batch: int, seed: int, rank: int = 0, start: int = 0
    ) -> None:
        self.tokens = [read_token_shard(p) for p in shards]
        self.block_size, self.micro_batch, self.seed, self.rank, self.start = block_size, micro_batch, seed, rank, start
        starts = np.array([max(len(t) - block_size, 0) for t in self.tokens], dtype=np.int64)  # valid starts
        if starts.sum() == 0:
            raise ValueError(
                f"no token shard among {[str(p) for p in shards]} holds more than block_size={block_size} tokens"
            )
        self.cumulative = np.cumsum(starts)

    def batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, b])
        u = rng.integers(0, self.cumulative[-1], size=self.micro_batch)
        shard = np.searchsorted(self.cumulative, u, side="right")
        offset = u - np.where(shard > 0, self.cumulative[shard - 1], 0)
        T = self.block_size
        windows = np.stack([self.tokens[s][o : o + T + 1] for s, o in zip(shard, offset)]).astype(np.int64)
        w = torch.from_numpy(windows)
        return w[:, :-1], w[:, 1:]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        b = self.start
        while True:
            x, y = self.batch(b)
            yield x, y, b
            b += 1


class SequentialWindows(Dataset):
    """Non-overlapping windows of block_size + 1 tokens (stride block_size) over the val shards: a fixed val set."""

    def __init__(self, shards: list[Path], block_size: int) -> None:
        self.tokens = [read_token_shard(p) for p in shards]
        self.block_size = block_size
        self.cumulative = np.cumsum([max(len(t) - 1, 0) // block_size for t in self.tokens])

    def __len__(self) -> int:
        return int(self.cumulative[-1]) if len(self.cumulative) else 0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        shard = int(np.searchsorted(self.cumulative, i, side="right"))
        start = (i - (int(self.cumulative[shard - 1]) if shard else 0)) * self.block_size
        w = torch.from_numpy(self.tokens[shard][start : start + self.block_size + 1].astype(np.int64))
        return w[:-1], w[1:]


def own_generator() -> torch.Generator:
    """A DataLoader seeds its iterators from its generator; a private one keeps the global RNG (dropout) untouched,
    so starting an iterator on resume does not shift the random stream."""
    return torch.Generator().manual_seed(0)


@dataclass
class DataPosition:
    seed: int
    micro_batch: int
    block_size: int
    next_batch: int = 0


class TokenDataModule(L.LightningDataModule):
    """Random training windows from tokens_dir/train_*.bin; a fixed validation set from tokens_dir/val_*.bin."""

    def __init__(self, tokens_dir: str | Path, block_size: int, micro_batch: int, seed: int = 1337) -> None:
        super().__init__()
        self.tokens_dir = Path(tokens_dir)
        self.train_shards = find_shards(self.tokens_dir, "train")
        if not self.train_shards:
            raise FileNotFoundError(f"no training token shards (train_*.bin) in {self.tokens_dir}")
        self.val_shards = find_shards(self.tokens_dir, "val")
        self.position = DataPosition(seed=seed, micro_batch=micro_batch, block_size=block_size)

    @property
    def has_val(self) -> bool:
        return bool(self.val_shards) and len(SequentialWindows(self.val_shards, self.position.block_size)) > 0

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        p = self.position
        windows = RandomWindows(self.train_shards, p.block_size, p.micro_batch, p.seed, rank, start=p.next_batch)
        return DataLoader(windows, batch_size=None, pin_memory=torch.cuda.is_available(), generator=own_generator())

    def val_dataloader(self) -> DataLoader:
        windows = SequentialWindows(self.val_shards, self.position.block_size)
        return DataLoader(
            windows,
            batch_size=self.position.micro_batch,
            pin_memory=torch.cuda.is_available(),
            generator=own_generator(),
        )

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if len(batch) == 3:  # a training batch about to be used: it is consumed from here on
            x, y, b = batch
            self.position.next_batch = int(b) + 1
            return x, y
        return batch

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self.position))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = DataPosition(**state)
        for field in ("seed", "micro_batch", "block_size"):
            if getattr(saved, field) != getattr(self.position, field):
                raise ValueError(
                    f"cannot resume exactly: the checkpoint's data stream used {field}="
                    f"{getattr(saved, field)}, this run uses {getattr(self.position, field)}"
                )
        self.position = saved
