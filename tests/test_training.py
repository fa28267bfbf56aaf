"""Lightning training on real token shards: data stream, run outputs, exact resume after SIGKILL, clear errors."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2LMHeadModel

from modeling.data import RandomWindows, SequentialWindows, TokenDataModule, read_token_shard, write_token_shard
from modeling.hf import from_pretrained
from modeling.launch import TrainingProcessError, build_parser, command_line, train_in_subprocess
from modeling.lightning_module import export_state_dict, lr_multiplier
from modeling.model import GPT, get_config
from modeling.train import TrainConfig, checkpoints, gradient_accumulation, latest_checkpoint, train

REPO = Path(__file__).resolve().parents[1]
VOCAB = 300


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_shards(directory: Path, n_train: int = 20_000, n_val: int = 3_000) -> Path:
    """A learnable stream: a fixed 50-token pattern repeated with 10% random substitutions."""
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, VOCAB, 50)
    tokens = np.tile(pattern, (n_train + n_val) // 50 + 1)[: n_train + n_val]
    noise = rng.random(tokens.size) < 0.1
    tokens[noise] = rng.integers(0, VOCAB, noise.sum())
    directory.mkdir(parents=True, exist_ok=True)
    write_token_shard(directory / "train_000000.bin", tokens[: n_train // 2])
    write_token_shard(directory / "train_000001.bin", tokens[n_train // 2 : n_train])
    write_token_shard(directory / "val_000000.bin", tokens[n_train:])
    return directory


def tiny_config(tokens: Path, out: Path, **overrides: object) -> TrainConfig:
    settings: dict = dict(
        tokens_dir=str(tokens),
        out_dir=str(out),
        model="tiny",
        vocab_size=VOCAB,
        max_steps=24,
        batch_tokens=2 * 4 * 64,
        micro_batch=4,
        lr=3e-3,
        val_interval=8,
        val_batches=3,
        checkpoint_interval=4,
        log_interval=1,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def read_metric(out: Path, name: str, version: int | None = None) -> dict[int, float]:
    files = (
        sorted((out / "logs").glob("version_*/metrics.csv"))
        if version is None
        else [out / "logs" / f"version_{version}" / "metrics.csv"]
    )
    values: dict[int, float] = {}
    for path in files:
        for row in csv.DictReader(open(path)):
            if row.get(name):
                values[int(row["step"])] = float(row[name])
    return values


def test_token_shards_and_windows(tmp_path: Path) -> None:
    big = np.arange(70_000, dtype=np.int64) % 66_000  # needs uint32
    write_token_shard(tmp_path / "a.bin", big)
    assert read_token_shard(tmp_path / "a.bin").dtype == np.uint32
    np.testing.assert_array_equal(read_token_shard(tmp_path / "a.bin"), big)
    with open(tmp_path / "a.bin", "r+b") as f:
        f.truncate(5000)
    with pytest.raises(ValueError, match="header promises"):
        read_token_shard(tmp_path / "a.bin")

    shards = [write_token_shard(tmp_path / f"train_{i:06d}.bin", np.arange(i * 1000, i * 1000 + 500)) for i in (1, 2)]
    assert read_token_shard(shards[0]).dtype == np.uint16
    windows = RandomWindows(shards, block_size=16, micro_batch=8, seed=7)
    x, y = windows.batch(3)
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.all(y[:, -1] - x[:, 0] == 16)  # a window never crosses a shard boundary
    assert {int(v) // 1000 for v in x[:, 0]} <= {1, 2}
    # reproducible from the seed, position-addressable (so resumable), different across batches and seeds
    resumed = next(iter(RandomWindows(shards, 16, 8, seed=7, start=3)))
    assert torch.equal(resumed[0], x) and resumed[2] == 3
    assert not torch.equal(windows.batch(4)[0], x)
    assert not torch.equal(RandomWindows(shards, 16, 8, seed=8).batch(3)[0], x)

    val = SequentialWindows(shards, block_size=16)
    assert len(val) == 2 * (499 // 16)
    assert int(val[len(val) - 1][0][0]) == 2000 + (499 // 16 - 1) * 16


def test_lr_schedule() -> None:
    assert lr_multiplier(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_multiplier(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_multiplier(10, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_multiplier(55, 10, 100, 0.1) == pytest.approx(0.55)
    assert lr_multiplier(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_multiplier(500, 10, 100, 0.1) == pytest.approx(0.1)


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TokenDataModule(tmp_path / "missing", 64, 4)
    with pytest.raises(FileNotFoundError, match="no training token shards"):
        TokenDataModule(tmp_path, 64, 4)
    tokens = make_shards(tmp_path / "tokens", n_train=2000, n_val=500)
    with pytest.raises(ValueError, match="unknown model config 'gpt5'; valid names: gpt2, gpt2-medium"):
        tiny_config(tokens, tmp_path / "run", model="gpt5")
    with pytest.raises(ValueError, match="exactly one of max_steps and max_tokens"):
        tiny_config(tokens, tmp_path / "run", max_tokens=10_000)
    with pytest.raises(
        ValueError,
        match=r"batch_tokens=1000 is not a multiple of micro_batch x block_size x devices"
        r" x nodes = 4 x 64 x 1 = 256",
    ):
        train(tiny_config(tokens, tmp_path / "run", batch_tokens=1000))
    with pytest.raises(FileNotFoundError, match="checkpoint to resume from .*nope.ckpt does not exist"):
        train(tiny_config(tokens, tmp_path / "run", resume=str(tmp_path / "nope.ckpt")))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="strategy='fsdp' needs CUDA GPUs .* use strategy='ddp'"):
            train(tiny_config(tokens, tmp_path / "run", strategy="fsdp"))
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was started
    assert gradient_accumulation(524288, 16, 1024, 8) == 4


def test_resume_true_without_a_checkpoint_is_an_error_and_auto_starts_from_step_0(tmp_path: Path, caplog) -> None:
    tokens = make_shards(tmp_path / "tokens", n_train=4000, n_val=500)
    out = tmp_path / "run"
    with pytest.raises(
        FileNotFoundError,
        match=rf"resume=True, but {out}/checkpoints holds no readable checkpoint; "
        r"pass resume='auto' to start from step 0",
    ):
        train(tiny_config(tokens, out, resume=True, max_steps=4))
    assert not (out / "checkpoints").exists()  # nothing was started
    with caplog.at_level("INFO", logger="modeling.train"):
        result = train(tiny_config(tokens, out, resume="auto", max_steps=4))
    assert result.steps == 4 and sorted(read_metric(out, "train/loss")) == [1, 2, 3, 4]
    assert f"no readable checkpoint in {out}/checkpoints, training from step 0" in caplog.text


def test_a_batch_that_does_not_divide_fails_when_the_config_is_made(tmp_path: Path) -> None:
    """Before the flow trains a tokenizer and encodes the corpus, not after (TrainConfig is built first)."""
    with pytest.raises(ValueError, match=r"batch_tokens=1000 is not a multiple of .* = 4 x 64 x 2 = 512"):
        tiny_config(tmp_path, tmp_path / "run", batch_tokens=1000, devices=2)
    with pytest.raises(ValueError, match=r"batch_tokens=1280 is not a multiple of .* = 4 x 32 x 4 = 512"):
        tiny_config(tmp_path, tmp_path / "run", batch_tokens=1280, block_size=32, devices=2, num_nodes=2)


def test_the_train_flow_checks_resume_and_batch_before_training_a_tokenizer(tmp_path: Path) -> None:
    """The flow's own body, without Prefect's engine: the errors come before the tokenizer task is reached."""
    from flows.train import train as train_flow

    corpus = tmp_path / "corpus"
    (corpus / "shards").mkdir(parents=True)
    (corpus / "shards" / "train-00000-of-00001.parquet").write_bytes(b"not read before the checks")
    run_dir = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match=rf"resume=True, but {run_dir}/checkpoints holds no readable"):
        train_flow.fn(corpus=str(corpus), model="tiny", max_steps=1, out_dir=str(run_dir), resume=True)
    with pytest.raises(ValueError, match=r"batch_tokens=1000 is not a multiple of micro_batch x block_size"):
        train_flow.fn(corpus=str(corpus), model="tiny", max_steps=1, out_dir=str(run_dir), batch_tokens=1000)
    assert not run_dir.exists()  # no tokenizer, no token shards


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before(tmp_path: Path, caplog) -> None:
    tokens = make_shards(tmp_path / "tokens")
    common = dict(checkpoint_interval=4, val_interval=100)
    out = tmp_path / "run"
    train(tiny_config(tokens, out, max_steps=12, **common))
    assert [p.name for p in checkpoints(out / "checkpoints")] == ["step0000012.ckpt", "step0000008.ckpt"]

    newest = out / "checkpoints" / "step0000012.ckpt"
    with open(newest, "r+b") as f:  # cut as a full disk or a killed copy would leave it
        f.truncate(newest.stat().st_size // 2)
    with caplog.at_level("WARNING", logger="modeling.train"):
        train(tiny_config(tokens, out, max_steps=16, resume=True, **common))
    assert f"checkpoint {newest} cannot be read" in caplog.text
    resumed = read_metric(out, "train/loss", version=1)
    assert sorted(resumed) == list(range(9, 17))  # from step 8, the checkpoint before the cut one

    left = checkpoints(out / "checkpoints")
    for path in left:
        with open(path, "r+b") as f:
            f.truncate(100)
    names = ", ".join(p.name for p in left)
    with pytest.raises(FileNotFoundError, match=rf"holds no readable checkpoint \({len(left)} unreadable: {names}\)"):
        train(tiny_config(tokens, out, max_steps=20, resume=True, **common))


def test_training_run_learns_logs_and_exports(tmp_path: Path) -> None:
    tokens = make_shards(tmp_path / "tokens")
    out = tmp_path / "run"
    result = train(tiny_config(tokens, out, max_steps=None, max_tokens=24 * 512, dropout=0.0))
    assert result.steps == 24 and result.tokens == 24 * 512
    losses = read_metric(out, "train/loss")
    assert sorted(losses) == list(range(1, 25))
    assert losses[24] < losses[1] - 1.5  # it learns the repeated pattern
    val = read_metric(out, "val/loss")
    assert {8, 16, 24} <= set(val) and val[24] < val[8]
    assert result.final_val_loss == pytest.approx(val[24])
    assert set(read_metric(out, "perf/tokens_per_s")) == set(losses)
    if not torch.cuda.is_available():  # no peak FLOP/s is known for a CPU: no MFU
        assert read_metric(out, "perf/mfu") == {} and result.mfu is None
    assert list((out / "tensorboard").glob("version_0/events.out.tfevents.*"))
    assert result.loss_curve == str(out / "loss_curve.png")
    assert (out / "loss_curve.png").read_bytes().startswith(b"\x89PNG") and (out / "loss_curve.svg").is_file()

    # The export is a Hugging Face checkpoint with the trained weights.
    hf = GPT2LMHeadModel.from_pretrained(out / "model").eval()
    ours = from_pretrained(out / "model")
    config, state = export_state_dict(result.checkpoint)
    assert config.vocab_size == VOCAB and config.n_layer == 2
    torch.testing.assert_close(ours.transformer.h[1].mlp.c_fc.weight, state["transformer.h.1.mlp.c_fc.weight"])
    x = torch.from_numpy(read_token_shard(tokens / "val_000000.bin")[:64].astype(np.int64))[None]
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, ours(x), rtol=0, atol=1e-5)


def test_logged_lr_is_the_rate_each_step_used_and_mfu_follows_its_formula(tmp_path: Path) -> None:
    """Step s (from 1) is taken with lr x lr_multiplier(s - 1): warmup 1/4, 2/4, 3/4, 4/4, then cosine. Lightning
    steps the scheduler before on_train_batch_end, so reading the optimizer there logs the next step's rate."""
    tokens = make_shards(tmp_path / "tokens", n_train=4000, n_val=500)
    out = tmp_path / "run"
    peak = 1e12
    result = train(
        tiny_config(
            tokens,
            out,
            max_steps=7,
            warmup_steps=4,
            lr=1e-3,
            val_interval=100,
            checkpoint_interval=100,
            peak_flops=peak,
        )
    )
    logged = read_metric(out, "train/lr")
    used = {step: 1e-3 * lr_multiplier(step - 1, 4, 7, 0.1) for step in range(1, 8)}
    assert logged == pytest.approx(used, rel=1e-12, abs=0)
    assert logged[1] == pytest.approx(2.5e-4) and logged[4] == pytest.approx(1e-3)
    # MFU = tokens/s x FLOPs per token / peak FLOP/s (one device), logged when a peak is given
    flops_per_token = GPT(get_config("tiny", vocab_size=VOCAB)).flops_per_token()
    tokens_per_s, mfu = read_metric(out, "perf/tokens_per_s"), read_metric(out, "perf/mfu")
    assert set(mfu) == set(range(1, 8))
    assert mfu == pytest.approx({s: tokens_per_s[s] * flops_per_token / peak for s in mfu}, rel=1e-6)
    assert result.mfu == pytest.approx(result.tokens_per_s * flops_per_token / peak)


def test_flops_per_token_is_6n_plus_attention() -> None:
    """GPT-2 124M by hand: N without position embeddings = 12 layers x (12 d^2 + 13 d) + final LayerNorm 2d +
    the padded token embedding 50304 d = 123,689,472 for d = 768; 6N + 12 x 12 layers x 1024 x 768 = 855,383,040."""
    with torch.device("meta"):
        gpt2 = GPT(get_config("gpt2"))
    matmul_params = sum(p.numel() for p in gpt2.parameters()) - gpt2.transformer.wpe.weight.numel()
    assert matmul_params == 12 * (12 * 768**2 + 13 * 768) + 2 * 768 + 50304 * 768 == 123_689_472
    # the parameter count the size is named by is another number: position embeddings in, padding out
    assert gpt2.num_params() == 123_689_472 + 1024 * 768 - (50304 - 50257) * 768 == 124_439_808
    assert gpt2.flops_per_token() == 855_383_040
    assert gpt2.flops_per_token(seq_len=512) == 6 * 123_689_472 + 12 * 12 * 512 * 768


def test_no_peak_flops_is_assumed_on_the_cpu(tmp_path: Path) -> None:
    from modeling.train import _peak_flops

    config = tiny_config(tmp_path, tmp_path / "run")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: its peak is looked up")
    assert _peak_flops(config) is None
    assert _peak_flops(tiny_config(tmp_path, tmp_path / "run", peak_flops=5e12)) == 5e12


def test_resume_after_sigkill_gives_identical_losses(tmp_path: Path) -> None:
    tokens = make_shards(tmp_path / "tokens")
    # dropout on, so the restored RNG state matters too; accumulation of 2 micro-batches per step
    common = dict(max_steps=16, dropout=0.1, checkpoint_interval=4, micro_batch=4, batch_tokens=2 * 4 * 64)
    reference = tmp_path / "reference"
    train(tiny_config(tokens, reference, **common))
    expected = read_metric(reference, "train/loss")
    assert sorted(expected) == list(range(1, 17))

    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "modeling.launch", *command_line(tiny_config(tokens, killed, **common))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count as this process: same float reductions
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while latest_checkpoint(killed / "checkpoints") is None and proc.poll() is None:
            assert time.monotonic() < deadline, "the training subprocess wrote no checkpoint"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    checkpoint = latest_checkpoint(killed / "checkpoints")
    resumed_from = int(checkpoint.stem.removeprefix("step"))
    assert resumed_from < 16, "the run finished before it could be killed"

    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["TokenDataModule"]["next_batch"] == resumed_from * 2  # data position: 2 micro-batches per step
    assert "rng_states" in saved and saved["global_step"] == resumed_from
    module = TokenDataModule(tokens, block_size=64, micro_batch=8, seed=1337)
    with pytest.raises(ValueError, match="cannot resume exactly: .* micro_batch=4, this run uses 8"):
        module.load_state_dict(saved["TokenDataModule"])

    train(tiny_config(tokens, killed, resume=True, **common))
    after = read_metric(killed, "train/loss", version=1)
    assert sorted(after) == list(range(resumed_from + 1, 17))
    assert after == {step: expected[step] for step in after}  # bit-identical, every later step
    val_expected, val_after = read_metric(reference, "val/loss"), read_metric(killed, "val/loss", version=1)
    assert val_after and val_after == {step: val_expected[step] for step in val_after}


def test_non_finite_loss_stops_naming_step_and_checkpoint(tmp_path: Path) -> None:
    """Through a training child process: the error raised in the caller carries the child's message."""
    tokens = make_shards(tmp_path / "tokens", n_train=4000, n_val=500)
    config = tiny_config(tokens, tmp_path / "run", lr=1e6, warmup_steps=0, max_steps=50, checkpoint_interval=1)
    with pytest.raises(
        TrainingProcessError,
        match=r"exited with code 1: RuntimeError: training stopped: loss is "
        r"(nan|inf) at step (\d+); last good checkpoint: .*step\d+\.ckpt",
    ) as err:
        train_in_subprocess(config)
    step = int(str(err.value).split(" at step ")[1].split(";")[0])
    last_good = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert last_good.name == f"step{step - 1:07d}.ckpt"
    _, state = export_state_dict(last_good)
    assert all(torch.isfinite(t).all() for t in state.values())


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_through_a_training_child_process(tmp_path: Path) -> None:
    tokens = make_shards(tmp_path / "tokens")
    config = tiny_config(
        tokens,
        tmp_path / "run",
        max_steps=6,
        devices=2,
        strategy="ddp",
        batch_tokens=2 * 2 * 4 * 64,
        val_interval=3,
        checkpoint_interval=3,
    )
    steps: list[dict[str, float]] = []
    output: list[str] = []
    result = train_in_subprocess(config, on_step=steps.append, on_output=output.append)
    assert result.steps == 6 and result.tokens == 6 * 1024
    assert [m["step"] for m in steps if "train/loss" in m] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert [m["step"] for m in steps if "val/loss" in m] == [3.0, 6.0]
    log = "\n".join(output)
    # two ranks, each doing 2 micro-batches of 4 x 64 per step: 2 x 2 x 256 = the 1024-token batch
    assert log.count("2 micro-batches of 4 x 64 on 2 devices") == 2, log
    assert "GLOBAL_RANK: 1" in log
    hf = GPT2LMHeadModel.from_pretrained(result.export_dir)
    _, state = export_state_dict(result.checkpoint)
    torch.testing.assert_close(hf.transformer.h[0].ln_1.weight, state["transformer.h.0.ln_1.weight"])


@pytest.mark.slow
def test_the_training_child_process_dies_with_its_caller(tmp_path: Path) -> None:
    import psutil

    tokens = make_shards(tmp_path / "tokens", n_train=4000, n_val=500)
    config = tiny_config(tokens, tmp_path / "run", max_steps=100_000, checkpoint_interval=100_000)
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom modeling.launch import *\nfrom modeling.train import TrainConfig\n"
            f"train_in_subprocess(TrainConfig(**{vars(config)!r}), on_step=lambda m: print('step', flush=True))",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert caller.stdout is not None and caller.stdout.readline() == "step\n"  # training is under way
        (child,) = psutil.Process(caller.pid).children()
        caller.kill()
        child.wait(timeout=30)  # raises TimeoutExpired if the child outlives its caller
    finally:
        caller.kill()
        caller.wait()


def make_corpus(directory: Path) -> Path:
    """A build-corpus output in the contract-5 layout (only the columns the tokenizer and encoder read matter)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    words = "the cat sat on a mat while dogs ran past the old red barn and birds sang in tall green trees".split()
    (directory / "shards").mkdir(parents=True)
    for split, n_docs in (("train", 300), ("val", 30)):
        texts = [" ".join(rng.choice(words, size=rng.integers(40, 120))) + "." for _ in range(n_docs)]
        table = pa.table(
            {
                "id": [f"{split}{i}" for i in range(n_docs)],
                "url": ["http://example.com/"] * n_docs,
                "text": texts,
                "n_words": [len(t.split()) for t in texts],
            }
        )
        pq.write_table(table, directory / "shards" / f"{split}-00000-of-00001.parquet")
    return directory


@pytest.mark.slow
@pytest.mark.server
def test_train_flow_tokenizes_trains_exports_publishes_and_evaluates(prefect_server, tmp_path: Path) -> None:
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_fixtures import read_artifacts, read_logs

    from flows.train import train as train_flow
    from tokenization.bpe import load_tokenizer

    corpus = make_corpus(tmp_path / "corpus")
    # DDP on two CPU processes: Lightning relaunches the flow's training child process for rank 1
    params = dict(
        corpus=str(corpus),
        tokenizer="train",
        tokenizer_vocab_size=400,
        model="tiny",
        max_steps=6,
        devices=2,
        strategy="ddp",
        batch_tokens=2 * 4 * 64,
        micro_batch=4,
        lr=3e-3,
        out_dir=str(tmp_path / "run"),
        val_interval=3,
        checkpoint_interval=3,
        log_interval=1,
        eval_limit=5,
    )
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        with pytest.raises(FileNotFoundError, match="has no training shards"):
            train_flow(**{**params, "corpus": str(tmp_path)})
        state = train_flow(**params, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    export = Path(summary["train"]["export_dir"])
    assert summary["train"]["steps"] == 6
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.json", "merges.txt"} <= {
        p.name for p in export.iterdir()
    }
    tokenizer = load_tokenizer(export)
    assert GPT2LMHeadModel.from_pretrained(export).config.vocab_size == tokenizer.n_vocab <= 400
    assert "evaluate" in summary and (export / "results.json").is_file()
    artifacts = {a["key"]: a for a in read_artifacts(prefect_server, str(state.state_details.flow_run_id))}
    assert "data:image/png;base64," in artifacts["gpt2-train-loss-curve"]["data"]
    table = {row["item"]: row["value"] for row in artifacts["gpt2-train-summary"]["data"]}
    assert table["steps"] == 6 and table["model"] == "tiny"

    # A second run finds the tokenizer and token shards made by the first and resumes from its final checkpoint.
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        again = train_flow(**{**params, "max_steps": 8, "resume": True, "run_eval": False})
        APILogHandler().flush()  # send the queued run logs now, while the session's server is still up
    assert again["train"]["steps"] == 8
    logs = "\n".join(read_logs(prefect_server, str(state.state_details.flow_run_id)))
    assert "1 micro-batches of 4 x 64 on 2 devices" in logs and "GLOBAL_RANK: 1" in logs, logs
    assert "step 6/6 train/loss=" in logs


def test_command_line_is_typed_and_round_trips(tmp_path: Path) -> None:
    configs = [
        TrainConfig(
            tokens_dir="t",
            out_dir="o",
            max_steps=5,
            devices=2,
            resume="/runs/a/step0000010.ckpt",
            compile=True,
            peak_flops=1e12,
            lr=3e-4,
            tokenizer_dir="tok",
        ),
        TrainConfig(tokens_dir="t", out_dir="o", max_tokens=5000, resume=True, progress_bar=True),
        TrainConfig(tokens_dir="t", out_dir="o", max_steps=1),
    ]
    for config in configs:
        args = vars(build_parser().parse_args(command_line(config)))
        args.pop("step_events")
        assert TrainConfig(**args) == config
    parsed = vars(build_parser().parse_args(["--tokens-dir", "t", "--out-dir", "o", "--max-steps", "3"]))
    assert (parsed["devices"], parsed["resume"], parsed["max_tokens"], parsed["compile"]) == (
        "auto",
        False,
        None,
        False,
    )
    for bad in (["--micro-batch", "eight"], ["--lr", "fast"], ["--compile", "yes"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--tokens-dir", "t", "--out-dir", "o", *bad])
    assert TrainConfig(tokens_dir="t", out_dir="o", max_tokens=4097, batch_tokens=2048).total_steps == 3
