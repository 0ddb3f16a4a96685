"""``reachable responses preview``: every screen of every flow, in order, with its buttons and
where each one leads, as an HTML page (or Markdown) a reviewer who is not technical can read.

Screens are produced by the real engine and renderer, so the page shows exactly what the bot
says. Messages that are replies rather than screens are listed after the flows.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from flows import Engine, State
from flows.definitions import MENU
from flows.model import Step
from flows.replies import MessageRef, Reply, Summary
from flows.text import quote
from responses import Renderer, Responses

SAMPLE_OTHER_REFERENCE = "Q7WM-2KXD"
SAMPLE_REFERENCE = "7K2P-QX9D"
SAMPLE_CODE = "7K2P-QX9D-M4TA-8BWE"
REVIEW_NEEDED = frozenset({"pl", "ro"})
ACTION_STEPS = {
    "@emergency": "emergency",
    "@crisis": "crisis",
    "@review": "review",
    "@report": "report.intro",
    "@restart_report": "report.intro",
    "@cancel": MENU,
    "@erase": MENU,
    "@finish": MENU,
}


@dataclass(frozen=True, slots=True)
class Button:
    number: int
    label: str
    leads_to: str
    anchor: str | None


@dataclass(frozen=True, slots=True)
class Screen:
    key: str
    messages: tuple[str, ...]
    buttons: tuple[Button, ...]


@dataclass
class Preview:
    locale: str
    text: dict[str, str]
    flows: list[tuple[str, list[Screen]]] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)
    review_needed: bool = False
    untranslated: tuple[str, ...] = ()  # services with no words in this language yet

    @property
    def step_keys(self) -> set[str]:
        return {screen.key for _, screens in self.flows for screen in screens}

    @property
    def message_ids(self) -> set[str]:
        return {key for key, _ in self.other} | self._shown

    _shown: set[str] = field(default_factory=set)


def anchor(key: str) -> str:
    return "step-" + key.replace(".", "-")


class PreviewBuilder:
    def __init__(self, engine: Engine, renderer: Renderer, locale: str) -> None:
        self.engine = engine
        self.renderer = renderer
        self.responses: Responses = renderer.responses
        self.locale = locale

    def t(self, message_id: str) -> str:
        return self.responses.text(self.locale, message_id)

    def sample_state(self) -> State:
        answers: dict[str, tuple[str, ...] | str] = {
            "what": ("assault", "drugged"),
            "when": ("week",),
            "where": ("london",),
            "borough": "Lambeth",
            "substances": ("g",),
            "account": self.t("preview.sample_account"),
            "app": ("no",),
            "elsewhere": ("no",),
            "wants": ("talk", "third_party"),
        }
        return State(locale=self.locale, answers=answers, resume="report.when", relay=SAMPLE_REFERENCE)

    def build(self) -> Preview:
        ids = ("title", "intro", "contents", "buttons", "leads_to", "bot", "more", "other", "other.intro")
        preview = Preview(
            self.locale, {k: self.t(f"preview.{k}") for k in ids}, review_needed=self.locale in REVIEW_NEEDED
        )
        preview.text["review_note"] = self.t("preview.review_note")
        preview.untranslated = self.responses.untranslated_services(self.locale)
        preview.text["untranslated"] = self.t("preview.untranslated_services")
        for flow in self.engine.steps.flows:
            preview.flows.append((flow.name, [self.screen(step, preview) for step in flow.steps]))
        for message_id in self.responses.ids():
            if message_id not in preview._shown and not message_id.startswith("preview."):
                preview.other.append((message_id, self.other_message(message_id)))
        return preview

    def screen(self, step: Step, preview: Preview) -> Screen:
        state = self.sample_state()
        outcome = self.engine.enter(state, "@review" if step.key == "review" else step.key)
        messages: list[str] = []
        last: Reply | None = None
        for reply in outcome.replies:
            preview._shown.add(reply.message)
            messages.extend(self.pages(reply))
            last = reply
        buttons: list[Button] = []
        if last is not None:
            for number, option in enumerate(self.renderer.render(last, self.locale).options, start=1):
                preview._shown.add(next(o.label for o in last.options if o.key == option.key))
                description, target = self.target(step, option.key)
                buttons.append(Button(number, option.text, description, target))
        if step.summary_label:
            preview._shown.add(step.summary_label)
        return Screen(step.key, tuple(messages), tuple(buttons))

    def pages(self, reply: Reply) -> list[str]:
        if reply.page is None:
            return [self.renderer.render(reply, self.locale).text]
        count = self.t(reply.message).count("\n---\n") + 1
        rendered = [
            self.renderer.render(Reply(reply.message, reply.variables, (), reply.step, n), self.locale)
            for n in range(count)
        ]
        return [r.text if n == 0 else f"{self.t('preview.more')}\n{r.text}" for n, r in enumerate(rendered)]

    def target(self, step: Step, key: str) -> tuple[str, str | None]:
        if key == "next_page":
            return self.t("preview.more"), None
        goto = self.engine.leads_to(step, key)
        if goto.startswith("@"):
            description = self.t(f"preview.action.{goto[1:]}")
            return description, anchor(ACTION_STEPS[goto]) if goto in ACTION_STEPS else None
        return goto, anchor(goto)

    def other_message(self, message_id: str) -> str:
        summary: Summary = self.engine.summary(self.sample_state())
        variables: dict[str, str | int | Summary | MessageRef] = {
            "reference": SAMPLE_REFERENCE,
            "code": SAMPLE_CODE,
            "limit": 1000,
            "length": "4,500",
            "borough": "Lambeth",
            "text": quote(self.t("preview.sample_staff_text")),
            "summary": summary,
            "send_to": self.t("staff.send_to.support"),
            "keep": self.t("staff.yes"),
            "allow_reply": self.t("staff.yes"),
            "version": 1,
            "table": self.t("figures.dimension.harm") + ": " + self.t("report.what.assault") + " <5",
            "pending": 0,
            "failed": 0,
            "label": self.t("report.what.violence"),
            "count": 2,
            "time": "03:00",
            "who": MessageRef("recipient.support.who"),
            "where": self.t("staff.where.email"),
            "attempts": 30,
            "user_id": 123456789,
            "references": f"{SAMPLE_REFERENCE}, {SAMPLE_OTHER_REFERENCE}",
            "reports": "\n".join(
                self.t("staff.match.report").format(reference=r, harms=self.t("report.what.drugged"), month="2026-11")
                for r in (SAMPLE_REFERENCE, SAMPLE_OTHER_REFERENCE)
            ),
            "named": quote("app: Grindr, Tom 88"),
            "harms": self.t("report.what.drugged"),
            "month": "2026-11",
            # The figures page (reachable figures) and /stats
            "service": "Demo service",
            "quarter": "2026Q4",
            "total": 101,
            "months": "2026-10, 2026-11, 2026-12",
            "hidden": self.t("figures.summary.hidden"),
            "services": "Galop, Clinic, Charity",
            "low": 84,
            "high": 90,
            "n": 6,
            "small": 5,
            "unknown": "between 9 and 13",
            "said": "6",
        }
        return self.renderer.render(Reply(message_id, variables), self.locale).text


def build_preview(engine: Engine, renderer: Renderer, locale: str = "en") -> Preview:
    return PreviewBuilder(engine, renderer, locale).build()


# ---------------------------------------------------------------------- output
CSS = """
body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}
nav ol{columns:2}
section.screen{border-top:1px solid #ccc;padding:.5rem 0 1rem}
h3{font-size:1rem;font-family:monospace;color:#444}
.bot{background:#eef3fb;border-radius:.75rem;padding:.75rem 1rem;margin:.5rem 0;white-space:pre-wrap}
ul.buttons{list-style:none;padding:0}
ul.buttons li{margin:.25rem 0}
.button{display:inline-block;border:1px solid #5b7db1;border-radius:.5rem;padding:.15rem .6rem;background:#fff}
.note{background:#fff4d6;padding:.5rem 1rem;border-radius:.5rem}
"""


def to_html(preview: Preview) -> str:
    e = html.escape
    text = preview.text
    parts = [
        "<!doctype html>",
        f'<html lang="{e(preview.locale)}"><head><meta charset="utf-8">',
        f"<title>{e(text['title'])}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(text['title'])}</h1><p>{e(text['intro'])}</p>",
    ]
    if preview.review_needed:
        parts.append(f'<p class="note" role="note">{e(text["review_note"])}</p>')
    if preview.untranslated:
        parts.append(f'<p class="note" role="note">{e(text["untranslated"])} {e(", ".join(preview.untranslated))}</p>')
    parts.append(f'<nav aria-label="{e(text["contents"])}"><h2>{e(text["contents"])}</h2><ol>')
    parts.extend(f'<li><a href="#flow-{e(name)}">{e(name)}</a></li>' for name, _ in preview.flows)
    parts.append(f'<li><a href="#other">{e(text["other"])}</a></li></ol></nav><main>')
    for name, screens in preview.flows:
        parts.append(f'<h2 id="flow-{e(name)}">{e(name)}</h2>')
        for screen in screens:
            parts.append(f'<section class="screen" id="{anchor(screen.key)}" aria-labelledby="h-{anchor(screen.key)}">')
            parts.append(f'<h3 id="h-{anchor(screen.key)}">{e(screen.key)}</h3>')
            parts.extend(
                f'<div class="bot" role="article" aria-label="{e(text["bot"])}">{e(m)}</div>' for m in screen.messages
            )
            if screen.buttons:
                parts.append(f'<ul class="buttons" aria-label="{e(text["buttons"])}">')
                for button in screen.buttons:
                    where = (
                        f'<a href="#{button.anchor}">{e(button.leads_to)}</a>' if button.anchor else e(button.leads_to)
                    )
                    parts.append(
                        f'<li><span class="button">{button.number}. {e(button.label)}</span> '
                        f"→ {e(text['leads_to'])} {where}</li>"
                    )
                parts.append("</ul>")
            parts.append("</section>")
    parts.append(f'<h2 id="other">{e(text["other"])}</h2><p>{e(text["other.intro"])}</p>')
    for message_id, rendered in preview.other:
        parts.append(f'<section class="screen" id="msg-{e(message_id)}"><h3>{e(message_id)}</h3>')
        parts.append(f'<div class="bot" role="article" aria-label="{e(text["bot"])}">{e(rendered)}</div></section>')
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def to_markdown(preview: Preview) -> str:
    text = preview.text
    lines = [f"# {text['title']}", "", text["intro"], ""]
    if preview.review_needed:
        lines += [f"> **{text['review_note']}**", ""]
    if preview.untranslated:
        lines += [f"> {text['untranslated']} {', '.join(preview.untranslated)}", ""]
    for name, screens in preview.flows:
        lines += [f"## {name}", ""]
        for screen in screens:
            lines += [f"### `{screen.key}`", ""]
            for message in screen.messages:
                lines += ["> " + line if line else ">" for line in message.splitlines()]
                lines.append("")
            for button in screen.buttons:
                target = f"[{button.leads_to}](#{button.anchor})" if button.anchor else button.leads_to
                lines.append(f"{button.number}. **{button.label}** → {text['leads_to']} {target}")
            lines.append("")
    lines += [f"## {text['other']}", "", text["other.intro"], ""]
    for message_id, rendered in preview.other:
        lines += [f"### `{message_id}`", ""]
        lines += ["> " + line if line else ">" for line in rendered.splitlines()]
        lines.append("")
    return "\n".join(lines)
