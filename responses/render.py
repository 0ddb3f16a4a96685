"""Turning the engine's replies into text: the one renderer every channel shares, so every
channel says the same words."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from flows.replies import Reply, Summary
from flows.text import quote
from responses.catalog import PAGE_BREAK, TELEGRAM_LIMIT
from responses.loader import Responses


@dataclass(frozen=True, slots=True)
class RenderedOption:
    key: str
    label: str
    selected: bool = False
    shown: str = ""

    @property
    def text(self) -> str:
        """What a button or a numbered line shows: the label, or the words for a chosen one."""
        return self.shown or self.label


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    options: tuple[RenderedOption, ...] = ()
    step: str | None = None

    def parts(self, limit: int = TELEGRAM_LIMIT) -> tuple[str, ...]:
        """The text cut into pieces no longer than ``limit``, at paragraph or line ends."""
        return tuple(_split(self.text, limit))


def _split(text: str, limit: int) -> Iterator[str]:
    while len(text) > limit:
        cut = max(text.rfind("\n\n", 0, limit), text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        cut = cut if cut > limit // 2 else limit
        yield text[:cut].rstrip()
        text = text[cut:].lstrip()
    if text:
        yield text


class _Variables(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Renderer:
    def __init__(self, responses: Responses, retention_days: int, draft_hours: int) -> None:
        self.responses = responses
        self.retention_days = retention_days
        self.draft_hours = draft_hours

    def render(self, reply: Reply, locale: str) -> Rendered:
        text = self.responses.text(locale, reply.message)
        pages = text.split(PAGE_BREAK)
        text = pages[min(reply.page, len(pages) - 1)] if reply.page is not None else "\n\n".join(pages)
        variables = _Variables(retention_days=str(self.retention_days), draft_hours=str(self.draft_hours))
        if "{services}" in text:
            variables["services"] = self.services_text(locale)
        for name, value in reply.variables.items():
            variables[name] = self.summary_text(value, locale) if isinstance(value, Summary) else str(value)
        chosen = self.responses.text(locale, "option.chosen")
        options = []
        for option in reply.options:
            label = self.responses.text(locale, option.label)
            shown = chosen.format_map(_Variables(label=label)) if option.selected else ""
            options.append(RenderedOption(option.key, label, option.selected, shown))
        return Rendered(text.format_map(variables), tuple(options), reply.step)

    def summary_text(self, summary: Summary, locale: str, for_staff: bool = False) -> str:
        """The summary as the person sees it, or (``for_staff``) with their own words quoted and
        made inert, so nothing they typed can pose as a line, a command or another summary."""
        lines = []
        for line in summary.lines:
            label = self.responses.text(locale, line.label)
            if line.text is not None and for_staff:
                lines.append(f"• {label}:\n{quote(line.text)}")
                continue
            if line.text is not None:
                value = line.text
            else:
                value = ", ".join(self.responses.text(locale, c) for c in line.choices)
            lines.append(f"• {label}: {value}")
        return "\n".join(lines)

    def services_text(self, locale: str) -> str:
        def field(name: str, value: str) -> str:
            return f"   {self.responses.text(locale, 'services.field.' + name)}: {value}"

        blocks = []
        for service in self.responses.services(locale):
            lines = [f"■ {service.name}", f"   {service.purpose}"]
            for name in ("phone", "text", "email", "web", "hours"):
                value = getattr(service, name)
                if value:
                    lines.append(field(name, value))
            if service.last_checked is None:
                lines.append("   " + self.responses.text(locale, "services.unchecked"))
            else:
                lines.append(field("checked", service.last_checked.isoformat()))
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)
