"""Turning the engine's replies into text: the one renderer every channel shares, so every
channel says the same words."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flows.replies import MessageRef, Reply, Summary
from flows.text import quote
from responses.catalog import PAGE_BREAK, TELEGRAM_LIMIT, Service
from responses.hours import LONDON, open_at
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
        # A paragraph end if there is one in the second half, else a line end, else a space.
        found = (text.rfind(mark, 0, limit) for mark in ("\n\n", "\n", " "))
        cut = next((at for at in found if at > limit // 2), limit)
        yield text[:cut].rstrip()
        text = text[cut:].lstrip()
    if text:
        yield text


class _Variables(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


SHORT_CHANNEL = "sms"  # a channel where a reply must fit a text message or three


class Renderer:
    def __init__(
        self,
        responses: Responses,
        retention_days: int,
        draft_hours: int,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.responses = responses
        self.retention_days = retention_days
        self.draft_hours = draft_hours
        self.clock = clock or (lambda: dt.datetime.now(LONDON))

    def render(self, reply: Reply, locale: str, channel: str | None = None) -> Rendered:
        """``reply`` as words in ``locale``, in ``channel``'s own wording where it has one."""
        text = self.responses.text(locale, reply.message, channel)
        pages = text.split(PAGE_BREAK)
        text = pages[min(reply.page, len(pages) - 1)] if reply.page is not None else "\n\n".join(pages)
        variables = _Variables(retention_days=str(self.retention_days), draft_hours=str(self.draft_hours))
        if "{services}" in text:
            variables["services"] = self.services_text(locale, channel)
        for name, value in reply.variables.items():
            if isinstance(value, Summary):
                variables[name] = self.summary_text(value, locale)
            elif isinstance(value, MessageRef):
                variables[name] = self.responses.text(locale, value.id, channel)
            else:
                variables[name] = str(value)
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

    def services_text(self, locale: str, channel: str | None = None) -> str:
        """Who is open now (London time) first, then everyone else; services with no way to
        contact them are left out until a charity adds one. "Check the details" is said once.
        In a text message, a line each: name and first way to reach them (there is room for
        little more)."""
        short = channel == SHORT_CHANNEL

        def field(name: str, value: str) -> str:
            return f"   {self.responses.text(locale, 'services.field.' + name)}: {value}"

        def block(service: Service) -> str:
            if short:
                name, value = next((n, v) for n in ("phone", "text", "email", "web") if (v := getattr(service, n)))
                label = self.responses.text(locale, "services.field." + name)
                return f"- {service.name}: {value}" if name == "phone" else f"- {service.name}, {label}: {value}"
            name_line = f"■ {service.name}"
            if not service.translated:
                name_line += f" ({self.responses.text(locale, 'services.in_english')})"
            lines = [name_line, f"   {service.purpose}"]
            for name in ("phone", "text", "email", "web", "address", "hours"):
                value = getattr(service, name)
                if value:
                    lines.append(field(name, value))
            if service.last_checked is not None:
                lines.append(field("checked", service.last_checked.isoformat()))
            return "\n".join(lines)

        now = self.clock().astimezone(LONDON)
        # By text message, often from a phone without a browser: those a call or a text reaches.
        listed = [s for s in self.responses.services(locale) if (s.phone or s.text if short else s.contactable)]
        open_now = [s for s in listed if open_at(s.open, s.closed_on, now)]
        others = [s for s in listed if s not in open_now]
        gap = "\n" if short else "\n\n"
        parts = []
        if open_now:
            when = self.responses.text(locale, "services.open_now", channel)
            when = when.format_map(_Variables(time=now.strftime("%H:%M")))
            parts.append(when + "\n\n" + gap.join(map(block, open_now)))
        if others:
            heading = self.responses.text(locale, "services.others", channel)
            parts.append(heading + "\n\n" + gap.join(map(block, others)))
        parts.append(self.responses.text(locale, "services.check_details", channel))
        return "\n\n".join(parts)
