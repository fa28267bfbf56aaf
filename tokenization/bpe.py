"""GPT-2's byte-level BPE: load OpenAI's vocabulary, train our own, encode with tiktoken.

Training uses HF `tokenizers` (GPT-2's pre-tokenization: no merges across character categories, a leading space
joins the word). Encoding uses tiktoken, which is ~4x faster here. tiktoken's merge rule ("merge the adjacent pair
whose concatenation has the lowest rank", and "a piece that is a whole token is that token") is not the same rule
as HF's ("apply the listed merge with the lowest rank"), so every vocabulary is checked before it is used (see
`_check_tiktoken_exact`): when the checks pass, both engines give the same ids on every input, and when they fail
we raise instead of encoding differently.

Files: `save(dir)` writes GPT-2's own format (encoder.json + vocab.bpe), the same content under HF's slow-tokenizer
names (vocab.json + merges.txt), and HF's tokenizer.json, so `transformers.GPT2TokenizerFast.from_pretrained(dir)`
loads a checkpoint directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import tiktoken
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from corpus.files import atomic_output

log = logging.getLogger(__name__)

EOT = "<|endoftext|>"
# GPT-2's pre-tokenization regex in tiktoken's faster, equivalent form (tiktoken_ext.openai_public.r50k_pat_str).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_SPECIAL_TOKEN = re.compile(r"<\|[^|\s]+\|>")
_MERGES_HEADER = "#version: 0.2"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table: vocab files spell tokens' bytes with these characters."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


@lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _to_bytes(token: str, source: str) -> bytes:
    table = _unicode_to_bytes()
    try:
        return bytes(table[c] for c in token)
    except KeyError as e:
        raise ValueError(f"{source}: token {token!r} is not spelled in GPT-2's byte alphabet ({e.args[0]!r})") from None


def _to_str(token: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def _reference_bpe(piece: bytes, merge_ranks: dict[tuple[bytes, bytes], int]) -> list[bytes]:
    """HF/GPT-2 BPE of one piece: repeatedly apply the lowest-ranked listed merge, leftmost first."""
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best_rank, best_at = None, -1
        for i in range(len(parts) - 1):
            rank = merge_ranks.get((parts[i], parts[i + 1]))
            if rank is not None and (best_rank is None or rank < best_rank):
                best_rank, best_at = rank, i
        if best_rank is None:
            break
        parts[best_at : best_at + 2] = [parts[best_at] + parts[best_at + 1]]
    return parts


def _check_tiktoken_exact(ranks: dict[bytes, int], merges: Sequence[tuple[bytes, bytes]], source: str) -> None:
    """Raise ValueError unless tiktoken's merge rule gives exactly the listed-merges BPE on this vocabulary.

    With the three properties below, a proof by induction over merge steps shows both engines take the same merge
    at every step: (a) every byte is a token; (b) each merge makes a distinct token, its rank rising in merge order,
    and every multi-byte token is made by exactly one merge; (c) each token's own bytes BPE-encode to that token.
    (b) makes tiktoken's rank of a listed pair equal its merge priority. If tiktoken ever preferred an unlisted pair
    (x, y) with x+y = t, the span of t was never merged across its edges, so it evolved exactly as t alone does,
    and by (c) the only two-token state on that path is t's own merge: (x, y) was listed after all. (c) also makes
    tiktoken's whole-piece shortcut agree.
    """
    if len(set(ranks.values())) != len(ranks):
        raise ValueError(f"{source}: several tokens share an id")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(f"{source}: the vocabulary lacks single-byte tokens for bytes {missing[:10]}")
    merge_ranks: dict[tuple[bytes, bytes], int] = {}
    previous = -1
    for i, (a, b) in enumerate(merges):
        if a not in ranks or b not in ranks or a + b not in ranks:
            raise ValueError(
                f"{source}: merge {i} ({_to_str(a)!r} {_to_str(b)!r}) uses or makes a token not in the vocabulary"
            )
        rank = ranks[a + b]
        if rank <= previous:
            raise ValueError(
                f"{source}: merge {i} ({_to_str(a)!r} {_to_str(b)!r}) makes id {rank}, not above the previous merge's"
                f" id {previous}; tiktoken needs result ids rising in merge order"
            )
        merge_ranks[(a, b)] = previous = rank
    n_multibyte = sum(1 for t in ranks if len(t) > 1)
    if n_multibyte != len(merges):
        raise ValueError(f"{source}: {n_multibyte} multi-byte tokens but {len(merges)} merges; each needs one merge")
    for a, b in merges:
        if _reference_bpe(a + b, merge_ranks) != [a + b]:
            raise ValueError(
                f"{source}: token {_to_str(a + b)!r} does not BPE-encode to itself; tiktoken would encode it"
                " differently"
            )


class BPETokenizer:
    """A byte-level BPE vocabulary (GPT-2 style) that encodes with tiktoken.

    `encode` treats every string as plain text: a literal "<|endoftext|>" inside a document is encoded as ordinary
    characters, so a document can never fake a document boundary. Document boundaries are `eot_token` ids.
    """

    def __init__(
        self,
        ranks: dict[bytes, int],
        merges: Sequence[tuple[bytes, bytes]],
        special_tokens: dict[str, int],
        source: str = "vocabulary",
    ) -> None:
        if EOT not in special_tokens:
            raise ValueError(f"{source}: no {EOT} token; it separates documents")
        clash = set(special_tokens.values()) & set(ranks.values())
        if clash:
            raise ValueError(f"{source}: special token ids {sorted(clash)[:5]} are also BPE token ids")
        _check_tiktoken_exact(ranks, merges, source)
        self.ranks = dict(ranks)
        self.merges = list(merges)
        self.special_tokens = dict(special_tokens)
        self.fingerprint = self._fingerprint()
        self._encoding = tiktoken.Encoding(
            name=f"bpe-{self.fingerprint[:12]}",
            pat_str=GPT2_PATTERN,
            mergeable_ranks=self.ranks,
            special_tokens=self.special_tokens,
        )

    def _fingerprint(self) -> str:
        """sha256 of everything that decides the ids: pattern, tokens with their ids, merge order, special tokens."""
        h = hashlib.sha256(GPT2_PATTERN.encode())
        for token, rank in sorted(self.ranks.items(), key=lambda item: item[1]):
            h.update(b"%d:%d:" % (rank, len(token)) + token)
        for a, b in self.merges:
            h.update(b"%d:%d:" % (len(a), len(b)) + a + b)
        h.update(json.dumps(sorted(self.special_tokens.items())).encode())
        return h.hexdigest()

    @property
    def eot_token(self) -> int:
        return self.special_tokens[EOT]

    @property
    def n_vocab(self) -> int:
        return self._encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str], threads: int = 0) -> list[list[int]]:
        """Encode many texts on `threads` threads (tiktoken releases the GIL); 0 means one per CPU core."""
        return self._encoding.encode_ordinary_batch(texts, num_threads=threads or os.cpu_count() or 1)

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; byte sequences that are not valid UTF-8 (a cut multi-byte character) decode to U+FFFD."""
        return self._encoding.decode(ids)

    def __repr__(self) -> str:
        return f"BPETokenizer(n_vocab={self.n_vocab}, eot_token={self.eot_token}, fingerprint={self.fingerprint[:12]})"

    # --- HF interop and files ---

    def vocab(self) -> dict[str, int]:
        """GPT-2/HF vocabulary: token spelled in GPT-2's byte alphabet -> id, special tokens included, by id."""
        entries = [(_to_str(t), i) for t, i in self.ranks.items()] + list(self.special_tokens.items())
        return dict(sorted(entries, key=lambda item: item[1]))

    def to_hf(self) -> Tokenizer:
        """The same vocabulary as an HF `tokenizers.Tokenizer` (GPT-2's settings)."""
        merges = [(_to_str(a), _to_str(b)) for a, b in self.merges]
        hf = Tokenizer(
            models.BPE(vocab=self.vocab(), merges=merges, continuing_subword_prefix="", end_of_word_suffix="")
        )
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        hf.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in self.special_tokens])
        return hf

    @classmethod
    def from_hf(cls, hf: Tokenizer, source: str = "HF tokenizer") -> BPETokenizer:
        """Convert an HF byte-level BPE tokenizer with GPT-2's settings; raise ValueError for anything else."""
        spec = json.loads(hf.to_str())
        model, pre = spec["model"], spec.get("pre_tokenizer") or {}
        problems = []
        if model.get("type") != "BPE":
            problems.append(f"model is {model.get('type')}, not BPE")
        if spec.get("normalizer") is not None:
            problems.append("it has a normalizer")
        if (pre.get("type"), pre.get("add_prefix_space"), pre.get("use_regex")) != ("ByteLevel", False, True):
            problems.append("pre-tokenizer is not ByteLevel(add_prefix_space=False, use_regex=True)")
        for option in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(option):
                problems.append(f"BPE option {option}={model[option]!r}")
        for option in ("byte_fallback", "ignore_merges"):
            if model.get(option):
                problems.append(f"BPE option {option}=True")
        if problems:
            raise ValueError(f"{source}: not a GPT-2 style byte-level BPE: {'; '.join(problems)}")
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        vocab = dict(model["vocab"])
        vocab.update({added["content"]: added["id"] for added in spec.get("added_tokens", [])})
        return _from_gpt2_vocab(vocab, merges, source)  # type: ignore[arg-type]

    def save(self, directory: str | Path) -> Path:
        """Write tokenizer.json, encoder.json + vocab.bpe, vocab.json + merges.txt and tokenizer_config.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab_json = json.dumps(self.vocab(), ensure_ascii=False)
        merges_txt = "\n".join([_MERGES_HEADER, *(f"{_to_str(a)} {_to_str(b)}" for a, b in self.merges)]) + "\n"
        config = {
            "tokenizer_class": "GPT2Tokenizer",
            "bos_token": EOT,
            "eos_token": EOT,
            "unk_token": EOT,
            "add_prefix_space": False,
        }
        files = {
            "encoder.json": vocab_json,
            "vocab.bpe": merges_txt,
            "vocab.json": vocab_json,
            "merges.txt": merges_txt,
            "tokenizer.json": self.to_hf().to_str(),
            "tokenizer_config.json": json.dumps(config, indent=2),
        }
        for name, content in files.items():
            with atomic_output(directory / name) as tmp:
                tmp.write_text(content, encoding="utf-8")
        return directory


def _from_gpt2_vocab(vocab: dict[str, int], merges: Sequence[tuple[str, str]], source: str) -> BPETokenizer:
    """Build from GPT-2/HF spelling: tokens that are neither bytes nor merge results are special tokens."""
    merged = {a + b for a, b in merges}
    ranks: dict[bytes, int] = {}
    special: dict[str, int] = {}
    for token, rank in vocab.items():
        if len(token) > 1 and token not in merged:
            if not _SPECIAL_TOKEN.fullmatch(token):
                raise ValueError(f"{source}: token {token!r} is neither a byte, a merge result nor a <|special|> token")
            special[token] = rank
        else:
            ranks[_to_bytes(token, source)] = rank
    byte_merges = [(_to_bytes(a, source), _to_bytes(b, source)) for a, b in merges]
    return BPETokenizer(ranks, byte_merges, special, source)


def _read_merges(path: Path) -> list[tuple[str, str]]:
    merges = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected 'left right', got {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


def load_gpt2(encoder_json: str | Path, vocab_bpe: str | Path) -> BPETokenizer:
    """Load GPT-2's vocabulary files (also HF's vocab.json + merges.txt, the same format). Local files only."""
    encoder_json, vocab_bpe = Path(encoder_json), Path(vocab_bpe)
    for path in (encoder_json, vocab_bpe):
        if not path.is_file():
            raise FileNotFoundError(f"GPT-2 vocabulary file not found: {path}")
    try:
        vocab = json.loads(encoder_json.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{encoder_json}: not valid JSON: {e}") from None
    if not isinstance(vocab, dict):
        raise ValueError(f"{encoder_json}: expected a JSON object token -> id")
    return _from_gpt2_vocab(vocab, _read_merges(vocab_bpe), f"{encoder_json} + {vocab_bpe}")


def load_tokenizer(directory: str | Path) -> BPETokenizer:
    """Load a directory holding encoder.json + vocab.bpe, or vocab.json + merges.txt, or tokenizer.json."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {directory}")
    for vocab_name, merges_name in (("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt")):
        if (directory / vocab_name).is_file() and (directory / merges_name).is_file():
            return load_gpt2(directory / vocab_name, directory / merges_name)
    if (directory / "tokenizer.json").is_file():
        path = directory / "tokenizer.json"
        return BPETokenizer.from_hf(Tokenizer.from_file(str(path)), source=str(path))
    raise FileNotFoundError(
        f"{directory}: no tokenizer files (expected encoder.json + vocab.bpe, vocab.json + merges.txt,"
        " or tokenizer.json)"
    )


def train_hf_bpe(texts: Iterable[str], vocab_size: int = 50257, min_frequency: int = 2) -> Tokenizer:
    """Train HF's byte-level BPE with GPT-2's pre-tokenization; `vocab_size` counts <|endoftext|>."""
    if vocab_size < 257:
        raise ValueError(f"vocab_size={vocab_size}: needs at least 257 (256 bytes + {EOT})")
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator(texts, trainer)
    return hf


def train_bpe(texts: Iterable[str], vocab_size: int = 50257, min_frequency: int = 2) -> BPETokenizer:
    """Train a GPT-2 style BPE on `texts` and convert it (checked exact) for tiktoken.

    A corpus too small to reach `vocab_size` gives a smaller vocabulary: we warn and `n_vocab` reports the real size.
    """
    hf = train_hf_bpe(texts, vocab_size, min_frequency)
    tokenizer = BPETokenizer.from_hf(hf, source="trained BPE")
    if tokenizer.n_vocab < vocab_size:
        message = (
            f"the training text only supports {tokenizer.n_vocab} tokens (asked for {vocab_size}): "
            f"no pair occurs at least {min_frequency} times any more"
        )
        log.warning(message)
        warnings.warn(message, stacklevel=2)
    log.info("trained BPE: %d tokens, fingerprint %s", tokenizer.n_vocab, tokenizer.fingerprint[:12])
    return tokenizer


def shard_paths(corpus_dir: str | Path, split: str) -> list[Path]:
    """corpus_dir/shards/{split}-*.parquet in order (contract 5 naming); [] when the split has none."""
    shards = Path(corpus_dir) / "shards"
    if not shards.is_dir():
        raise FileNotFoundError(f"no shards directory in the corpus: {shards}")
    return sorted(shards.glob(f"{split}-*.parquet"))


def iter_shard_texts(paths: Sequence[Path], batch_rows: int = 1024) -> Iterator[str]:
    """Stream the `text` column of Parquet shards, one record batch at a time (constant memory)."""
    import pyarrow.parquet as pq

    for path in paths:
        shard = pq.ParquetFile(path)
        if "text" not in shard.schema_arrow.names:
            raise ValueError(f"{path}: no 'text' column (has {shard.schema_arrow.names})")
        for batch in shard.iter_batches(batch_size=batch_rows, columns=["text"]):
            yield from (text for text in batch.column(0).to_pylist() if text)


def train_bpe_from_shards(corpus_dir: str | Path, vocab_size: int = 50257, min_frequency: int = 2) -> BPETokenizer:
    """Train on the train split only (val stays unseen), streaming the shards in constant memory."""
    paths = shard_paths(corpus_dir, "train")
    if not paths:
        raise FileNotFoundError(f"no train shards in {Path(corpus_dir) / 'shards'} (expected train-*.parquet)")
    return train_bpe(iter_shard_texts(paths), vocab_size, min_frequency)


def train_or_reuse_bpe(
    corpus_dir: str | Path, directory: str | Path, vocab_size: int = 50257, min_frequency: int = 2
) -> tuple[BPETokenizer, bool]:
    """The tokenizer trained on this corpus build, from `directory` when it was trained there before on the same
    build (manifest.json's sha256) with the same settings, else trained now and saved there. Returns it and whether
    it was reused."""
    directory = Path(directory)
    manifest = Path(corpus_dir) / "manifest.json"
    trained_on = {
        "corpus_manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None,
        "vocab_size": vocab_size,
        "min_frequency": min_frequency,
    }
    stamp = directory / "trained_on.json"
    if (directory / "tokenizer.json").is_file() and stamp.is_file() and json.loads(stamp.read_text()) == trained_on:
        return load_tokenizer(directory), True
    trained = train_bpe_from_shards(corpus_dir, vocab_size, min_frequency)
    trained.save(directory)
    stamp.write_text(json.dumps(trained_on))  # written last: a crash in between retrains
    return trained, False
