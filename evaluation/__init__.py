"""Zero-shot evaluation of GPT-2 checkpoints on the paper's benchmarks. A plain library: no Prefect imports."""
