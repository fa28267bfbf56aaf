"""The Prefect UI shows a deployment run as Completed: a real server, the served deployments, a run started with
`prefect deployment run ... --watch`, and the runs page loaded in headless Debian Chromium through Playwright.

The run is a real, small one: `gpt2/evaluate` on a tiny randomly initialised GPT-2 checkpoint with the GPT-2
tokenizer, a few LAMBADA examples.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect_fixtures import PrefectServer, ServedDeployments, read_artifacts, read_logs, run_deployment, ui_runs_page

DEPLOYMENT = "gpt2/evaluate"

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, gpt2_bpe_dir: Path) -> Path:
    """A checkpoint dir as training exports it: HF config + safetensors, plus the GPT-2 tokenizer files."""
    import torch

    from modeling.hf import save_pretrained
    from modeling.model import GPT, get_config
    from tokenization.bpe import load_gpt2

    tokenizer = load_gpt2(gpt2_bpe_dir / "encoder.json", gpt2_bpe_dir / "vocab.bpe")
    torch.manual_seed(0)
    model = GPT(get_config("tiny", vocab_size=tokenizer.n_vocab))
    path = tmp_path_factory.mktemp("checkpoint")
    save_pretrained(model, path, eos_token_id=tokenizer.eot_token)
    tokenizer.save(path)
    return path


@pytest.fixture(scope="module")
def completed_run(
    prefect_server: PrefectServer, served_deployments: ServedDeployments, tiny_checkpoint: Path, eval_data_dir: Path
) -> dict:
    if DEPLOYMENT not in served_deployments.names:
        pytest.skip(f"{DEPLOYMENT} is not served: its flow file does not exist yet")
    params = {
        "checkpoint": str(tiny_checkpoint),
        "tasks": ["lambada"],
        "data_dir": str(eval_data_dir),
        "limit": 8,
        "batch_size": 4,
        "device": "cpu",
    }
    flow_run = run_deployment(prefect_server, DEPLOYMENT, params, timeout=240)
    assert flow_run["state_type"] == "COMPLETED", f"{flow_run['state_name']}\n{flow_run['cli_output']}\n" + "\n".join(
        read_logs(prefect_server, flow_run["id"])
    )
    return flow_run


def test_deployment_run_reads_back_with_its_parameters_and_artifacts(
    prefect_server: PrefectServer, completed_run: dict, tiny_checkpoint: Path
) -> None:
    assert completed_run["parameters"]["checkpoint"] == str(tiny_checkpoint)
    assert "Flow run finished successfully in 'Completed'" in completed_run["cli_output"]
    assert read_artifacts(prefect_server, completed_run["id"], include_subflows=True), "the run published no artifact"


def test_ui_runs_page_shows_the_run_completed(
    prefect_server: PrefectServer, completed_run: dict, tmp_path: Path
) -> None:
    page = ui_runs_page(prefect_server, [completed_run["name"]], tmp_path / "runs.png")
    row_text = page.rows[completed_run["name"]]
    assert "Completed" in row_text and "evaluate" in row_text  # state badge and deployment name
    assert page.screenshot.stat().st_size > 10_000
    assert page.hosts == {"127.0.0.1"}, f"the UI contacted {page.hosts - {'127.0.0.1'}}"
