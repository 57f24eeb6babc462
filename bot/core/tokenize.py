"""The one place jieba lives: a private ``jieba.Tokenizer`` with the knowledge base's domain words.

Its dictionary load costs most of a second, so it happens once: at start-up in long-running bots (call
:meth:`ChineseTokenizer.warm_up`), lazily on first use in one-shot commands.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import jieba

jieba.setLogLevel(logging.WARNING)  # jieba prints its dictionary-loading chatter at DEBUG otherwise

# Tokens that carry no topic information (particles, pronouns, punctuation-only tokens are dropped too).
STOPWORDS = frozenset(
    [
        "的",
        "了",
        "吗",
        "呢",
        "吧",
        "啊",
        "呀",
        "么",
        "嘛",
        "哦",
        "哈",
        "是",
        "我",
        "你",
        "他",
        "她",
        "它",
        "我们",
        "你们",
        "他们",
        "这",
        "那",
        "这个",
        "那个",
        "就",
        "都",
        "也",
        "还",
        "和",
        "与",
        "及",
        "在",
        "有",
        "被",
        "把",
        "给",
        "让",
        "对",
        "要",
        "会",
        "能",
        "可以",
        "一个",
        "什么",
        "怎么",
        "怎么样",
        "如何",
        "为什么",
        "请问",
        "请",
        "您",
        "一下",
        "现在",
        "已经",
        "没有",
        "不",
        "没",
        "吧",
        "说",
        "问",
        "想",
        "知道",
        "可能",
        "应该",
        "如果",
        "但是",
        "因为",
        "所以",
        "然后",
        "而且",
        "或者",
        "之",
        "其",
        "该",
        "于",
        "个",
        "很",
        "太",
        "又",
        "再",
        "才",
        "啥",
        "咋",
        "嗯",
    ]
)


def _is_word(token: str) -> bool:
    return bool(token.strip()) and any(ch.isalnum() for ch in token)


class ChineseTokenizer:
    def __init__(self, domain_words: Iterable[str] = ()):
        self._jieba = jieba.Tokenizer()
        self._words = tuple(dict.fromkeys(w for w in domain_words if w and len(w) > 1))
        self._ready = False
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._ready:
                return
            self._jieba.initialize()
            for word in self._words:
                # A high frequency makes jieba keep domain terms (爆通讯录, 上门催收) whole.
                self._jieba.add_word(word, freq=200000)
            self._ready = True

    def words(self, text: str) -> list[str]:
        """Content words of ``text`` (already normalized), in order, stopwords removed."""
        if not self._ready:
            self.warm_up()
        return [t for t in self._jieba.lcut(text, HMM=False) if _is_word(t) and t not in STOPWORDS]
