"""Run training in a child process, and the command line over TrainConfig: `python -m modeling.launch --help`.

Why a child: Lightning's DDP launches the other ranks by re-running the current command, which must be the training
command (not, say, a Prefect flow run); and a crash or out-of-memory kill there leaves the caller alive to report it.
The same command line serves multi-process launches by hand (torchrun, SLURM, Lightning's own).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import types
import typing
from collections import deque
from collections.abc import Callable
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

from modeling.train import TrainConfig, TrainResult, train

log = logging.getLogger(__name__)

STEP_EVENT = "modeling.launch.step "  # prefix of the per-step metric lines `--step-events` prints
PARENT_PID_ENV = "MODELING_LAUNCH_PARENT_PID"  # set by train_in_subprocess: the child dies with that process


class TrainingProcessError(RuntimeError):
    """The training process exited with an error; the message carries its last output lines."""


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)  # real types, not the strings `from __future__ import annotations` leaves


def _converter(name: str, hint: Any) -> Callable[[str], Any]:
    """Turn one command-line string into the field's type: int, float, str, `X | None`, `int | str` (devices),
    `bool | str` (resume: true/false or a checkpoint path)."""
    options = [t for t in typing.get_args(hint) if t is not type(None)] if isinstance(hint, types.UnionType) else [hint]

    def convert(text: str) -> Any:
        for kind in options:
            if kind is bool:
                if text.lower() in ("true", "false"):
                    return text.lower() == "true"
            elif kind in (int, float):
                try:
                    return kind(text)
                except ValueError:
                    continue
            else:
                return kind(text)
        raise argparse.ArgumentTypeError(f"{text!r} is not {' or '.join(k.__name__ for k in options)}")

    return convert


def build_parser() -> argparse.ArgumentParser:
    """One option per TrainConfig field, typed from its annotation (`--compile/--no-compile` for booleans)."""
    parser = argparse.ArgumentParser(
        prog="python -m modeling.launch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = _hints()
    for field in fields(TrainConfig):
        flag, hint = "--" + field.name.replace("_", "-"), hints[field.name]
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        elif field.default is MISSING:  # tokens_dir, out_dir
            parser.add_argument(flag, required=True, type=_converter(field.name, hint))
        else:
            parser.add_argument(
                flag,
                type=_converter(field.name, hint),
                default=field.default,
                help=f"{hint} (default: {field.default})".replace("%", "%%"),
            )
    parser.add_argument(
        "--step-events",
        action="store_true",
        help=f"print each step's metrics as one '{STEP_EVENT}<json>' line (for train_in_subprocess)",
    )
    return parser


def command_line(config: TrainConfig) -> list[str]:
    """The `python -m modeling.launch` arguments that recreate config (None fields keep their defaults)."""
    args: list[str] = []
    hints = _hints()
    for name, value in asdict(config).items():
        flag = "--" + name.replace("_", "-")
        if hints[name] is bool:
            args.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            args += [flag, str(value)]
    return args


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel SIGKILL this process when the process that started it dies (a killed flow run must
    not leave its training running). Set here in the child, as preexec_fn is unsafe in a threaded parent."""
    if sys.platform != "linux":
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before the line above
        sys.exit(f"modeling.launch: parent process {parent_pid} is gone")


def train_in_subprocess(
    config: TrainConfig,
    on_step: Callable[[dict[str, float]], None] | None = None,
    on_output: Callable[[str], None] | None = None,
    tail_lines: int = 30,
) -> TrainResult:
    """Run train(config) as `python -m modeling.launch` in a child process and return its result.

    Step metrics reach on_step, every other output line on_output; a failure raises
    TrainingProcessError with the last tail_lines of output. The child dies with its parent.
    """
    summary = Path(config.out_dir) / "summary.json"
    summary.unlink(missing_ok=True)  # rewritten at the end of a successful run: never read a stale one
    command = [sys.executable, "-m", "modeling.launch", *command_line(config), "--step-events"]
    tail: deque[str] = deque(maxlen=tail_lines)
    env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=1,
        env=env,
        encoding="utf-8",
        errors="replace",
    ) as child:  # a stray byte must not end the stream
        try:
            assert child.stdout is not None
            for line in child.stdout:
                line = line.rstrip("\n")
                if line.startswith(STEP_EVENT):
                    if on_step is not None:
                        on_step(json.loads(line[len(STEP_EVENT) :]))
                    continue
                tail.append(line)
                if on_output is not None:
                    on_output(line)
        finally:
            if child.poll() is None:  # the caller is being interrupted: stop the training too
                child.kill()
            child.wait()
    if child.returncode != 0 or not summary.is_file():
        last = next((line for line in reversed(tail) if line.strip()), "no output")  # a traceback's last line
        output = "\n".join(tail)
        raise TrainingProcessError(
            f"training process {' '.join(command[:3])} for {config.out_dir} exited with code "
            f"{child.returncode}: {last}\n--- its last output ---\n{output}"
        )
    return TrainResult(**json.loads(summary.read_text())["result"])


def main(argv: list[str] | None = None) -> None:
    """Command line over TrainConfig; needed for multi-process DDP/FSDP launches (torchrun, SLURM, Lightning)."""
    args = vars(build_parser().parse_args(argv))
    step_events = args.pop("step_events")
    if parent := os.environ.pop(PARENT_PID_ENV, None):  # popped: the DDP ranks Lightning starts are not our children
        _die_with_parent(int(parent))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    def on_step(metrics: dict[str, float]) -> None:
        if step_events:
            print(STEP_EVENT + json.dumps(metrics), flush=True)
        else:
            log.info("%s", {k: round(v, 5) for k, v in metrics.items()})

    result = train(TrainConfig(**args), on_step=on_step)
    print(json.dumps(result.to_dict(), indent=2))


if __name__ == "__main__":
    main()
