"""Pure analysis: no transport, database or environment. Entry point: :class:`Analyzer`."""

from bot.core.analyze import Analyzer
from bot.core.models import Analysis, Reply, SignalHit, TopicMatch

__all__ = ["Analysis", "Analyzer", "Reply", "SignalHit", "TopicMatch"]
