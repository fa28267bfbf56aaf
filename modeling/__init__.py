"""GPT-2 model, Hugging Face interop and Lightning training. A plain library: no Prefect imports."""
