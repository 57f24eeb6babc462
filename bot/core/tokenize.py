"""The one place jieba lives: a private ``jieba.Tokenizer`` with the knowledge base's domain words.

jieba's full dictionary (349k words) takes most of a second to load. Words that never occur in the knowledge
base cannot help matching (they have no weight in the topic index), so the tokenizer loads a *reduced*
dictionary: the full dictionary's words that occur in the knowledge texts, plus every single character, with
the full dictionary's total frequency so jieba's path scores stay the same. The reduced dictionary is built
once per knowledge version and kept in a cache directory; without one it is built in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from bot.cache import cache_dir as default_cache_dir


@contextlib.contextmanager
def _without_pkg_resources() -> Iterator[None]:
    # jieba imports pkg_resources only to open its own package files, and falls back to a plain open() when
    # that import fails; pkg_resources alone costs ~60 ms of every cold start, so it is hidden for the import.
    if "pkg_resources" in sys.modules:
        yield
        return
    sys.modules["pkg_resources"] = None  # type: ignore[assignment]  # makes `import pkg_resources` fail
    try:
        yield
    finally:
        del sys.modules["pkg_resources"]


with _without_pkg_resources():
    import jieba

jieba.setLogLevel(logging.WARNING)  # jieba prints its dictionary-loading chatter at DEBUG otherwise
log = logging.getLogger(__name__)

# Tokens that carry no topic information (particles, pronouns, punctuation-only tokens are dropped too).
STOPWORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 么 嘛 哦 哈 是 我 你 他 她 它 我们 你们 他们 这 那 这个 那个 就 都 也 还 和 与 及 在 有 "
    "被 把 给 让 对 要 会 能 可以 一个 什么 怎么 怎么样 如何 为什么 请问 请 您 一下 现在 已经 没有 不 没 "
    "说 问 想 知道 可能 应该 如果 但是 因为 所以 然后 而且 或者 之 其 该 于 个 很 太 又 再 才 啥 咋 嗯".split()
)
_MAX_WORD = 8  # longer dictionary words are idioms and names that never decide a topic
_DOMAIN_FREQ = 200000  # high enough that jieba keeps domain terms (爆通讯录, 上门催收) whole


def _is_word(token: str) -> bool:
    # isalnum() first: nearly every token is all letters, and it is much cheaper than the any() loop.
    return token.isalnum() or any(ch.isalnum() for ch in token)


# jieba's own block split: runs of Han characters, ASCII letters and digits (and +#&._%-) are segmented; what
# lies between is punctuation and space, cut into single characters.
_BLOCK = re.compile("([\u4e00-\u9fd5a-zA-Z0-9+#&\\._%\\-]+)")


class _Segmenter:
    """jieba's precise mode without HMM (``Tokenizer.lcut(text, HMM=False)``), token for token, over a loaded
    tokenizer's dictionary: the same word graph and the same best path by log frequency, ties going to the
    longer word, with runs of single ASCII letters and digits joined. jieba builds a dict of lists for the
    graph and then walks it; this walks the text once from the end, in about a third of the time."""

    def __init__(self, freq: dict[str, int], total: int):
        self._freq = freq  # word → frequency; every prefix of a word is a key too (frequency 0)
        log_total = math.log(total)
        self._log_p = {w: math.log(f) - log_total for w, f in freq.items() if f}
        self._unknown = -log_total  # log(1) - log(total): jieba's score for a character not in the dictionary

    def _cut_block(self, block: str) -> list[str]:
        n = len(block)
        freq, log_p = self._freq, self._log_p
        score = [0.0] * (n + 1)
        end = [*range(1, n + 1), n]  # end (exclusive) of the best word starting at each position
        for k in range(n - 1, -1, -1):
            best: float | None = None
            i = k + 1
            frag = block[k]
            while frag in freq:
                if freq[frag]:
                    candidate = log_p[frag] + score[i]
                    # >=: jieba's max() prefers the longer word on a tie.
                    if best is None or candidate >= best:
                        best, end[k] = candidate, i
                if i >= n:
                    break
                i += 1
                frag = block[k:i]
            if best is None:
                best, end[k] = self._unknown + score[k + 1], k + 1
            score[k] = best
        words: list[str] = []
        ascii_run = ""
        k = 0
        while k < n:
            word = block[k : end[k]]
            k = end[k]
            if len(word) == 1 and word.isascii() and word.isalnum():
                ascii_run += word
                continue
            if ascii_run:
                words.append(ascii_run)
                ascii_run = ""
            words.append(word)
        if ascii_run:
            words.append(ascii_run)
        return words

    def cut(self, text: str) -> list[str]:
        """Every token jieba gives, except whitespace, which it yields alone and callers drop anyway."""
        tokens: list[str] = []
        for i, block in enumerate(_BLOCK.split(text)):
            if i % 2:  # split() with a group alternates: between-blocks, block, between-blocks, ...
                tokens += self._cut_block(block)
            else:
                tokens += [ch for ch in block if not ch.isspace()]
        return tokens


def _full_dictionary() -> tuple[list[tuple[str, str]], int]:
    with jieba.Tokenizer().get_dict_file() as handle:
        raw = handle.read().decode("utf-8")
    entries = []
    total = 0
    for line in raw.splitlines():
        parts = line.split(" ")
        if len(parts) >= 2 and parts[1].isdigit():
            entries.append((parts[0], parts[1]))
            total += int(parts[1])
    return entries, total


def build_reduced_dictionary(corpus: Iterable[str]) -> tuple[str, int]:
    """The dictionary text (``word freq`` lines) of the full dictionary's words found in ``corpus``."""
    substrings: set[str] = set()
    for text in corpus:
        n = len(text)
        for i in range(n):
            for j in range(i + 2, min(n, i + _MAX_WORD) + 1):
                substrings.add(text[i:j])
    entries, total = _full_dictionary()
    kept = [f"{word} {freq}" for word, freq in entries if len(word) == 1 or word in substrings]
    return "\n".join(kept) + "\n", total


class ChineseTokenizer:
    def __init__(
        self, domain_words: Iterable[str] = (), corpus: Iterable[str] = (), cache_dir: Path | None = None
    ):
        self._words = tuple(dict.fromkeys(w for w in domain_words if w and len(w) > 1))
        self._corpus = tuple(corpus)
        self._cache_dir = cache_dir
        self._jieba: jieba.Tokenizer | None = None
        self._segmenter: _Segmenter | None = None
        self._lock = threading.Lock()

    def _reduced_dictionary_file(self) -> tuple[Path, int]:
        digest = hashlib.sha256("\n".join(self._corpus).encode()).hexdigest()[:16]
        cache_dir = self._cache_dir or default_cache_dir()
        path = cache_dir / f"jieba-{digest}.dict"
        total_path = path.with_suffix(".total")
        try:
            return path, int(total_path.read_text())
        except (OSError, ValueError):
            pass
        text, total = build_reduced_dictionary(self._corpus)
        cache_dir.mkdir(parents=True, exist_ok=True)
        for target, content in ((path, text), (total_path, str(total))):
            fd, tmp = tempfile.mkstemp(dir=cache_dir)  # atomic: a concurrent start never reads half a file
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.replace(tmp, target)
        return path, total

    def _reduced_tokenizer(self) -> jieba.Tokenizer | None:
        try:
            path, total = self._reduced_dictionary_file()
        except OSError as exc:  # no writable cache: the full dictionary still works, only slower
            log.warning("jieba reduced dictionary unavailable (%s); loading the full one", exc)
            return None
        tokenizer = jieba.Tokenizer(dictionary=str(path))
        tokenizer.tmp_dir = str(path.parent)
        tokenizer.initialize()
        tokenizer.total = total  # path scores as with the full dictionary
        return tokenizer

    def warm_up(self) -> None:
        with self._lock:
            if self._jieba is not None:
                return
            tokenizer = self._reduced_tokenizer() if self._corpus else None
            if tokenizer is None:
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
            for word in self._words:
                tokenizer.add_word(word, freq=_DOMAIN_FREQ)
            self._segmenter = _Segmenter(tokenizer.FREQ, tokenizer.total)
            self._jieba = tokenizer

    def words(self, text: str) -> list[str]:
        """Content words of ``text`` (already normalized), in order, stopwords removed."""
        if self._segmenter is None:
            self.warm_up()
        assert self._segmenter is not None
        return [t for t in self._segmenter.cut(text) if _is_word(t) and t not in STOPWORDS]
