"""The conversation engine: pure, framework-free, flows declared as data.

Nothing in this package imports a messaging framework or a database driver; a test checks.
"""

from flows.effects import Effect, EraseReport, ForgetDraft, StoreReport, WipeChat
from flows.engine import Engine, EngineConfig, Outcome
from flows.events import Choice, Command, Event, Resume, Text, Unsupported
from flows.replies import Reply
from flows.state import State

__all__ = [
    "Choice",
    "Command",
    "Effect",
    "Engine",
    "EngineConfig",
    "EraseReport",
    "Event",
    "ForgetDraft",
    "Outcome",
    "Reply",
    "Resume",
    "State",
    "StoreReport",
    "Text",
    "Unsupported",
    "WipeChat",
]
