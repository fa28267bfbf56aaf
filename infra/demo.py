"""`make demo` (`python -m infra.demo`): the whole pipeline, offline, on the project's own mini web.

1. the local stack is brought up if needed (Prefect server on 127.0.0.1:4200 + the served deployments; infra.services);
2. the mini web is generated from a seed (reused when it exists with the same seed and size) and served on loopback;
3. through `prefect deployment run ... --watch`: `webtext/build-corpus` (the mini web's Reddit dump, fetched through
   `connect_to`) -> `gpt2/train` (a tokenizer trained on the corpus and a small GPT-2, a few minutes on 2 CPU cores),
   which evaluates its checkpoint with `gpt2/evaluate` at its end (run here as a deployment if it did not);
4. the corpus is checked against the mini web's ground truth, and the UI address and the outputs on disk are printed.

A second run reuses what is done: the mini web is kept, the corpus build finds its finished stages, training resumes
from its last checkpoint. The mini web server lives only while the demo runs; `make down` stops the stack.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from corpus.urls import canonicalize_url
from infra.env import CLIENT_AUTH, REPO, client_env
from infra.failures import failure_report
from infra.miniweb import DEFAULT_ARTICLES, DEFAULT_SEED, SMALL_ARTICLES, MiniWeb, build_miniweb, serve_miniweb
from infra.server import api_request
from infra.services import Stack, StackError, up

CORPUS, TRAIN, EVALUATE = "webtext/build-corpus", "gpt2/train", "gpt2/evaluate"
SHARED_EVAL = Path(os.environ.get("WEBTEXT_SHARED_DIR", REPO.parent / "shared")) / "data" / "eval"


@dataclass(frozen=True)
class DemoSize:
    """How much the demo does: the mini web's size, the model and its training, the evaluation's sample size."""

    articles: int
    model: str  # a name from modeling.model.CONFIGS
    max_steps: int
    batch_tokens: int
    micro_batch: int
    val_interval: int
    val_fraction: float  # of the corpus documents held out: the val loss and webtext-val need a few
    vocab_size: int
    eval_limit: int
    shared_eval: bool  # also evaluate on the paper's benchmarks when ../shared/data/eval exists


SIZES = {
    # About 65 documents (~35k words, ~45k tokens); a 4-layer model for ~5 epochs: the whole demo in under 12
    # minutes on 2 cores.
    "full": DemoSize(
        articles=DEFAULT_ARTICLES,
        model="mini",
        max_steps=120,
        batch_tokens=8 * 256,
        micro_batch=8,
        val_interval=25,
        val_fraction=0.1,
        vocab_size=4096,
        eval_limit=30,
        shared_eval=True,
    ),
    # The test's size: ~11 documents, a 2-layer model for a few steps.
    "small": DemoSize(
        articles=SMALL_ARTICLES,
        model="tiny",
        max_steps=20,
        batch_tokens=8 * 64,
        micro_batch=8,
        val_interval=10,
        val_fraction=0.3,
        vocab_size=512,
        eval_limit=8,
        shared_eval=False,
    ),
}

RunDeployment = Callable[[str, dict[str, Any]], dict[str, Any]]  # (deployment, parameters) -> finished flow run


class DemoError(RuntimeError):
    """A stage of the demo failed; the message says which and where to look."""


def corpus_params(web: MiniWeb, connect_to: dict[str, str], out_dir: Path, size: DemoSize) -> dict[str, Any]:
    return {
        "dumps": [str(p) for p in web.dumps],
        "out_dir": str(out_dir / "corpus"),
        "connect_to": connect_to,  # the dump's hosts -> the mini web's loopback server
        "val_fraction": size.val_fraction,
        "n_workers": 2,
        "fetch_deadline_s": 10.0,  # the mini web's slow page drips for minutes: a timeout either way, sooner
    }


def eval_data_dir(size: DemoSize) -> str | None:
    """The paper's benchmark files, only where ../shared provides them (nothing is downloaded)."""
    return str(SHARED_EVAL) if size.shared_eval and SHARED_EVAL.is_dir() else None


def eval_tasks(size: DemoSize) -> list[str] | None:
    """None: every benchmark found in the data folder, plus webtext-val (the corpus' own val shards)."""
    return None if eval_data_dir(size) else ["webtext-val"]


def train_params(out_dir: Path, size: DemoSize) -> dict[str, Any]:
    return {
        "corpus": str(out_dir / "corpus"),
        "tokenizer": "train",  # GPT-2's own vocabulary files are not part of the project
        "tokenizer_vocab_size": size.vocab_size,
        "model": size.model,
        "max_steps": size.max_steps,
        "batch_tokens": size.batch_tokens,
        "micro_batch": size.micro_batch,
        "val_interval": size.val_interval,
        "checkpoint_interval": size.val_interval,
        "out_dir": str(out_dir / "model"),
        "resume": "auto",  # a second demo continues from the newest checkpoint instead of starting over
        "eval_tasks": eval_tasks(size),
        "eval_data_dir": eval_data_dir(size),
        "eval_limit": size.eval_limit,
    }


def evaluate_params(checkpoint: str, out_dir: Path, size: DemoSize) -> dict[str, Any]:
    return {
        "checkpoint": checkpoint,
        "tasks": eval_tasks(size),
        "data_dir": eval_data_dir(size),
        "limit": size.eval_limit,
        "corpus": str(out_dir / "corpus"),
    }


def api(api_url: str, method: str, path: str, body: dict | None = None) -> Any:
    return api_request(api_url, method, path, body, auth=os.environ.get(CLIENT_AUTH))


def evaluation_subflow(api_url: str, train_run: dict[str, Any]) -> dict[str, Any] | None:
    """The `gpt2/evaluate` flow run that the train run started at its end, if it did."""
    children = api(
        api_url,
        "POST",
        "flow_runs/filter",
        {"flow_runs": {"parent_flow_run_id": {"any_": [train_run["id"]]}}, "sort": "START_TIME_DESC", "limit": 50},
    )
    return next((run for run in children if "checkpoint" in run["parameters"]), None)


def require_completed(name: str, flow_run: dict[str, Any], api_url: str) -> dict[str, Any]:
    if flow_run["state_type"] != "COMPLETED":
        raise DemoError(
            f"{name} ended {flow_run['state_name']} (flow run {flow_run['id']}):\n"
            f"{failure_report(api_url, flow_run['id'], auth=os.environ.get(CLIENT_AUTH))}"
        )
    return flow_run


def run_pipeline(
    run: RunDeployment, api_url: str, web: MiniWeb, connect_to: dict[str, str], out_dir: Path, size: DemoSize
) -> dict[str, dict[str, Any]]:
    """build-corpus -> train (-> evaluate); returns the three finished flow runs by deployment name."""
    runs = {CORPUS: require_completed(CORPUS, run(CORPUS, corpus_params(web, connect_to, out_dir, size)), api_url)}
    runs[TRAIN] = require_completed(TRAIN, run(TRAIN, train_params(out_dir, size)), api_url)
    evaluation = evaluation_subflow(api_url, runs[TRAIN])
    if evaluation is None:  # the train flow did not evaluate: run the deployment on its export
        evaluation = run(EVALUATE, evaluate_params(str(out_dir / "model" / "model"), out_dir, size))
    runs[EVALUATE] = require_completed(EVALUATE, evaluation, api_url)
    return runs


def corpus_urls(corpus_dir: Path) -> set[str]:
    return {
        canonicalize_url(url)
        for path in sorted((corpus_dir / "shards").glob("*.parquet"))
        for url in pq.read_table(path, columns=["url"]).column("url").to_pylist()
    }


def ground_truth_diff(web: MiniWeb, corpus_dir: Path) -> tuple[set[str], set[str]]:
    """(documents the corpus lacks, documents it should not have), both by canonical URL."""
    want = {canonicalize_url(url) for url in web.expectations()["corpus_urls"]}
    got = corpus_urls(corpus_dir)
    return want - got, got - want


_UUID_LINE = re.compile(r"UUID:\s*([0-9a-f-]{36})")


def cli_runner(env: dict[str, str]) -> RunDeployment:
    """Run a deployment as a user does, `prefect deployment run NAME --params JSON --watch`, echoing its output."""

    def run(name: str, params: dict[str, Any]) -> dict[str, Any]:
        print(f"\n==> prefect deployment run {name} --watch", flush=True)
        cmd = [sys.executable, "-m", "prefect", "deployment", "run", name, "--params", json.dumps(params), "--watch"]
        process = subprocess.Popen(
            cmd, env={**env, "COLUMNS": "250"}, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        output = []
        for line in process.stdout:
            print(f"    {line}", end="", flush=True)
            output.append(line)
        process.wait()
        match = _UUID_LINE.search("".join(output))
        if match is None:
            tail = "".join(output[-10:])
            raise DemoError(f"`prefect deployment run {name}` started no flow run (exit {process.returncode}):\n{tail}")
        return api(env["PREFECT_API_URL"], "GET", f"flow_runs/{match.group(1)}")

    return run


def report(
    runs: dict[str, dict[str, Any]], api_url: str, ui_url: str, out_dir: Path, web: MiniWeb, seconds: float
) -> None:
    print(f"\nDemo finished in {seconds / 60:.1f} min. Runs (all Completed), with their artifacts:")
    for name, flow_run in runs.items():
        artifacts = api(
            api_url, "POST", "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}, "limit": 50}
        )
        keys = ", ".join(sorted({a["key"] for a in artifacts if a["key"]})) or "none"
        print(f"  {name:22s} {ui_url}/runs/flow-run/{flow_run['id']}\n  {'':22s} artifacts: {keys}")
    missing, extra = ground_truth_diff(web, out_dir / "corpus")
    expected = web.expectations()["counts"]["documents"]
    if missing or extra:
        print(
            f"\nGround truth: the corpus differs from the mini web's expectations: missing {sorted(missing)}, "
            f"unexpected {sorted(extra)}"
        )
    else:
        print(
            f"\nGround truth: the corpus holds exactly the {expected} documents the mini web says must survive "
            f"(low karma, NSFW, media, dead, robots-excluded, slow, failing, short, duplicate and Wikipedia pages "
            f"all left out)."
        )
    print(f"""
Outputs on disk:
  mini web + Reddit dump + ground truth  {web.root}
  corpus shards, manifest, dataset card  {out_dir / "corpus" / "shards"}
  model run (checkpoints, loss curve)    {out_dir / "model"}
  exported checkpoint + results.md       {out_dir / "model" / "model"}

Prefect UI: {ui_url}   (`make down` stops the server and the deployments)""")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="full",
        help="full: the demo (~10 min on 2 cores); small: the test's size (~3 min)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where everything is written (default data/demo, data/demo-small, data/demo-seed7, ...)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the mini web's seed")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    # One folder per size and seed: a resumed model or a reused tokenizer never mixes two corpora.
    name = (
        "demo"
        + ("" if args.size == "full" else f"-{args.size}")
        + ("" if args.seed == DEFAULT_SEED else f"-seed{args.seed}")
    )
    out_dir = (args.out or REPO / "data" / name).resolve()
    started = time.monotonic()

    stack = Stack.from_env()
    try:
        up(stack)
        env = client_env()
    except (StackError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    web = build_miniweb(args.seed, size.articles, out_dir / "miniweb")
    counts = web.expectations()["counts"]
    print(
        f"\nmini web: {web.root} (seed {web.seed}): {counts['submissions']} Reddit submissions in "
        f"{len(web.dumps)} monthly dumps; {counts['documents']} documents should reach the corpus"
    )
    if CLIENT_AUTH in env:  # `api` sends it too
        os.environ[CLIENT_AUTH] = env[CLIENT_AUTH]
    try:
        with serve_miniweb(web) as server:
            print(f"mini web served on {server.url}; connect_to: {json.dumps(server.connect_to)}")
            runs = run_pipeline(cli_runner(env), stack.api_url, web, server.connect_to, out_dir, size)
    except DemoError as exc:
        print(f"\ndemo failed: {exc}\nThe UI shows the run: {stack.ui_url}", file=sys.stderr)
        return 1
    report(runs, stack.api_url, stack.ui_url, out_dir, web, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
