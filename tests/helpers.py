"""Small helpers that let tests read like a conversation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from flows import Engine, Event, State
from flows.effects import Effect
from flows.events import Choice, parse_typed
from responses import Rendered, Renderer


class FixedTokens:
    """Predictable references and codes, in the real format."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def reference(self) -> str:
        return f"TEST-{next(self._n):04d}"

    def code(self) -> str:
        n = next(self._n)
        return f"C0DE-7K2P-QX9D-{n:04d}"


@dataclass
class Chat:
    """Drives the engine as one person would, keeping state, effects and what was said."""

    engine: Engine
    renderer: Renderer
    state: State = field(default_factory=State)
    effects: list[Effect] = field(default_factory=list)
    said: list[Rendered] = field(default_factory=list)

    def send(self, event: Event | str) -> list[Rendered]:
        if isinstance(event, str):
            event = parse_typed(event)
        outcome = self.engine.handle(self.state, event)
        self.state = outcome.state
        self.effects.extend(outcome.effects)
        rendered = [self.renderer.render(r, self.state.locale) for r in outcome.replies]
        self.said.extend(rendered)
        return rendered

    def tap(self, label: str) -> list[Rendered]:
        """Press the button whose label is ``label`` on the last message that had buttons."""
        last = self.last_with_options
        for option in last.options:
            if option.label == label:
                return self.send(Choice(step=last.step or "", option=option.key))
        raise AssertionError(f"no button {label!r}; buttons: {[o.label for o in last.options]}")

    @property
    def last_with_options(self) -> Rendered:
        return next(m for m in reversed(self.said) if m.options)

    @property
    def labels(self) -> list[str]:
        return [o.label for o in self.last_with_options.options]

    @property
    def step(self) -> str:
        return self.state.step


def text_of(messages: list[Rendered]) -> str:
    return "\n\n".join(m.text for m in messages)
