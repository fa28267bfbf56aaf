"""Tokenization for training and evaluation: GPT-2's byte-level BPE (OpenAI's vocabulary or one trained on the
corpus, `bpe`), the llm.c token-shard file format (`shard_format`), and encoding corpus shards into token shards
(`encode`). Never imports Prefect."""
