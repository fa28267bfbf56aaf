"""Zero-shot evaluation of GPT-2 checkpoints on the paper's benchmarks. A plain library: no Prefect imports.

Modules:
- `lm`: the scoring core (`Scorer`): batched log-likelihoods of continuations, rolling windows with a stride,
  batched greedy / top-k decoding; works with our `modeling.model.GPT`, a transformers `GPT2LMHeadModel`, or any
  `model(idx) -> logits (B, T, V)` with a `block_size`.
- `detokenize`: invertible de-tokenizers for WikiText, PTB and One Billion Word.
- `language_modeling` (WikiText-2/103, PTB, enwik8, text8, 1BW, webtext-val), `lambada`, `cbt`, `wsc`, `coqa`,
  `summarization` (CNN/DM), `translation` (WMT14 en-fr / fr-en), `nq`: one module per benchmark, each documenting
  how the paper ran it and every choice we had to make.
- `protocol`: the named protocols (`paper`, `lm-eval`) and their options (`normalize_quotes`, `eot_prefix`, `stride`).
- `harness`: lm-evaluation-harness task files over local data, to run the real harness beside the `lm-eval` protocol.
- `overlap`: train/test 8-gram overlap with a Bloom filter (paper section 4).
- `paper`: the paper's numbers; `report`: results.md / results.json / results.svg; `run`: evaluate a checkpoint.

Data layout under `data_dir` (the published archives' own file names; `task_paths` overrides any one of them):
    lambada/lambada_test.jsonl            wsc/WSCollection.xml          wmt14-newstest2014-fren/*.sgm
    wikitext-2-raw/wiki.test.raw          wikitext-103-raw/wiki.test.raw                ptb/ptb.test.txt
    enwik8/enwik8                         text8/text8                   1bw/news.en.heldout-00000-of-00050
    cbt/cbtest_{CN,NE}_valid_2000ex.txt   coqa/coqa-dev-v1.0.json       cnn_dailymail/test.jsonl (or .story dir)
    nq_open/NQ-open.dev.jsonl
Nothing is downloaded: a missing file is an error naming the file and where it is published.
"""
