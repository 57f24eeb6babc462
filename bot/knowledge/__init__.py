"""The knowledge base: topics, signals, platforms and sources loaded from ``knowledge/``."""

from bot.knowledge.load import (
    DEFAULT_DIR,
    CompiledSignal,
    Knowledge,
    KnowledgeError,
    export_knowledge,
    load_knowledge,
)

__all__ = [
    "DEFAULT_DIR",
    "CompiledSignal",
    "Knowledge",
    "KnowledgeError",
    "export_knowledge",
    "load_knowledge",
]
