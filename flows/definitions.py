"""Every screen and every question of Reachable, as data.

Read top to bottom: the main menu, what happens after someone tells us they were hurt or
writes something we have to understand (``INTENT_TARGETS``: where each intent leads), the report
questionnaire (DESIGN §4: all optional), the review and the separate consent choices
(DESIGN §3), advice, services, emergency, deleting a report and language. Labels and prompts
are message ids in ``responses/``; a Mermaid diagram of each flow sits beside this file.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from flows.match_flows import MATCH
from flows.model import MENU as MENU  # re-exported: where every flow ends
from flows.model import Flow, Kind, Option, Step
from flows.report_flows import CONSENT, REPORT, ordered_report
from flows.understanding import HARMS

QUESTIONNAIRE_VERSION = 1
# Harms after which the "what to do after an assault" advice belongs on the screen, and the only
# ones a SOIT officer (sexual offences) is offered for.
SEXUAL_HARMS = ("assault", "drugged")


def _urgent_help(key: str, prompt: str) -> Step:
    """Help that interrupts anything: then back to where the person was, or on to support."""
    return Step(
        key=key,
        prompt=prompt,
        options=(
            Option("resume", "option.carry_on", goto="@resume", only_if="resume"),
            Option("services", "menu.services", goto="services"),
            Option("menu", "option.menu", goto=MENU),
        ),
    )


MAIN = Flow(
    name="main",
    diagram="main.mmd",
    steps=(
        Step(
            key=MENU,
            prompt="menu.prompt",
            options=(
                Option("emergency", "menu.emergency", goto="@emergency"),
                Option("advice", "menu.advice", goto="advice"),
                Option("services", "menu.services", goto="services"),
                Option("report", "menu.report", goto="@report"),
                Option("delete", "menu.delete", goto="delete.ask"),
                Option("language", "menu.language", goto="language"),
            ),
        ),
        _urgent_help("emergency", "emergency.guidance"),
        # What the next message after emergency help gets: never the same block again.
        _urgent_help("emergency.cpr", "emergency.cpr"),
        _urgent_help("emergency.still", "emergency.still"),
        _urgent_help("emergency.arrived", "emergency.arrived"),
        _urgent_help("emergency.police", "emergency.police"),
        # Suicidal thoughts: their own help, never overdose first aid.
        _urgent_help("crisis", "crisis.guidance"),
        # When we are not sure what someone means: safety first, then the likeliest needs.
        Step(key="triage", prompt="triage.prompt", dynamic="likely"),
        Step(
            key="about",
            prompt="about.text",
            options=(
                Option("report", "menu.report", goto="@report"),
                Option("menu", "option.menu", goto=MENU),
            ),
        ),
        Step(key="thanks", prompt="thanks.reply", options=(Option("menu", "option.menu", goto=MENU),)),
        Step(
            key="services",
            prompt="services.list",
            options=(Option("menu", "option.menu", goto=MENU),),
        ),
        Step(key="language", prompt="language.prompt", dynamic="locales"),
        Step(
            key="delete.ask",
            prompt="delete.ask",
            kind=Kind.TEXT,
            next="@delete",
            max_length=64,
            skippable=False,
        ),
        Step(
            key="check.ask",
            prompt="check.ask",
            kind=Kind.TEXT,
            next="@check",
            max_length=64,
            skippable=False,
        ),
    ),
)


def _offer(kind: str) -> Step:
    """What someone gets after telling us they were hurt: safety, support, reporting — in one reply."""
    after = (Option("after", "intent.option.after", goto="advice.after_assault"),) if kind in SEXUAL_HARMS else ()
    return Step(
        key=f"intent.{kind}",
        prompt=f"intent.{kind}",
        options=(
            Option("emergency", "intent.option.emergency", goto="@emergency"),
            Option("support", "intent.option.support", goto="services"),
            *after,
            Option("report", "intent.option.report", goto="@report"),
            Option("police", "advice.police.title", goto="advice.police"),
            Option("menu", "option.menu", goto=MENU),
        ),
    )


SUPPORT = Flow(name="support", diagram="support.mmd", steps=tuple(_offer(kind) for kind in HARMS))

# The commands a channel lists in its command menu (each has a "telegram.command.<name>" text);
# /menu, /check and the rest also work typed.
PUBLIC_COMMANDS = (
    "start",
    "help",
    "emergency",
    "report",
    "advice",
    "services",
    "check",
    "delete",
    "language",
    "cancel",
    "exit",
)

# What each intent of the understanding step leads to (``flows/understanding.py``). Charities'
# examples in ``responses/<locale>/nlu.yml`` may use only these intents.
# Help in an emergency and for suicidal thoughts: when sends must wait, these go first.
URGENT_MESSAGES = frozenset(
    {
        "emergency.guidance",
        "crisis.guidance",
        "emergency.cpr",
        "emergency.still",
        "emergency.arrived",
        "emergency.police",
    }
)

INTENT_TARGETS = {
    "overdose": "@emergency",
    "suicide": "@crisis",
    **{kind: f"intent.{kind}" for kind in HARMS},
    "need_help": "triage",
    "advice_mixing": "advice.mixing",
    "advice_g_dosing": "advice.g_dosing",
    "advice_overdose_signs": "advice.overdose",
    "advice_withdrawal": "advice.withdrawal",
    "advice_meth_meph": "advice.meth_meph",
    "advice_injecting": "advice.injecting",
    "advice_pep_prep": "advice.pep_prep",
    "advice_after_assault": "advice.after_assault",
    "advice_consent": "advice.consent",
    "advice_police": "advice.police",
    "services": "services",
    "open_now": "services",
    "report": "@report",
    "delete_report": "delete.ask",
    "check_report": "check.ask",
    "about": "about",
    "greeting": "@greet",
    "thanks": "thanks",
    "other": "@other",
}
# How the triage question offers an intent it thinks likely (an overdose is always offered, as
# "someone is in danger"; greetings, thanks and "other" never are).
TRIAGE_LABELS = {
    "suicide": "triage.option.suicide",
    "assault": "report.what.assault",
    "drugged": "report.what.drugged",
    "robbery": "report.what.robbery",
    "threats": "report.what.threats",
    "violence": "report.what.violence",
    "need_help": "menu.services",
    "advice_mixing": "advice.mixing.title",
    "advice_g_dosing": "advice.g_dosing.title",
    "advice_overdose_signs": "advice.overdose.title",
    "advice_withdrawal": "advice.withdrawal.title",
    "advice_meth_meph": "advice.meth_meph.title",
    "advice_injecting": "advice.injecting.title",
    "advice_pep_prep": "advice.pep_prep.title",
    "advice_after_assault": "advice.after_assault.title",
    "advice_consent": "advice.consent.title",
    "advice_police": "advice.police.title",
    "services": "menu.services",
    "open_now": "menu.services",
    "report": "menu.report",
    "delete_report": "menu.delete",
    "check_report": "triage.option.check",
    "about": "triage.option.about",
}
TRIAGE_OFFERS = 3

RELAY = Flow(
    name="relay",
    diagram="relay.mmd",
    steps=(
        # After a message from staff, whatever the person types next is their answer: shown
        # back to them with one tap to send it.
        Step(
            key="relay.incoming",
            prompt="relay.incoming.prompt",
            kind=Kind.TEXT,
            next="@hold_answer",
            max_length=1000,
            options=(
                Option("resume", "option.carry_on", goto="@resume", only_if="resume"),
                Option("menu", "option.menu", goto=MENU),
            ),
        ),
        Step(
            key="relay.confirm",
            prompt="relay.confirm",
            options=(
                Option("send", "relay.confirm.send", goto="@relay"),
                Option("change", "relay.confirm.change", goto="relay.incoming"),
                Option("cancel", "relay.confirm.cancel", goto="@drop_answer"),
            ),
        ),
    ),
)

# Coming back with the code (/check CODE): how the report stands, and what can change now.
# Each change is consent given then, recorded like the first.
LATER = Flow(
    name="later",
    diagram="later.mmd",
    steps=(
        Step(
            key="check.choices",
            prompt="check.choices",
            dynamic="unlocked",
            variants=(("may_name", "check.choices.any"), ("nothing_to_send", "check.choices.erase_only")),
        ),
        Step(
            key="check.reply",
            prompt="consent.reply",
            kind=Kind.CHOICE,
            field="consent.later_reply",
            options=(Option("yes", "consent.reply.yes"), Option("no", "consent.reply.no")),
            next="@send_later",
        ),
    ),
)

ADVICE_TOPICS = (
    "g_dosing",
    "mixing",
    "overdose",
    "withdrawal",
    "meth_meph",
    "injecting",
    "pep_prep",
    "after_assault",
    "consent",
    "police",
)


def _topic(topic: str) -> Step:
    return Step(
        key=f"advice.{topic}",
        prompt=f"advice.{topic}",
        options=(
            Option("more", "advice.back", goto="advice"),
            Option("menu", "option.menu", goto=MENU),
        ),
    )


ADVICE = Flow(
    name="advice",
    diagram="advice.mmd",
    steps=(
        Step(
            key="advice",
            prompt="advice.prompt",
            options=(
                *(Option(topic, f"advice.{topic}.title", goto=f"advice.{topic}") for topic in ADVICE_TOPICS),
                Option("menu", "option.menu", goto=MENU),
            ),
        ),
        *(_topic(topic) for topic in ADVICE_TOPICS),
    ),
)

FLOWS = (MAIN, SUPPORT, REPORT, CONSENT, RELAY, LATER, MATCH, ADVICE)


def build_flows(order: Sequence[str] | None = None, off: Collection[str] = ()) -> tuple[Flow, ...]:
    """The flows with the report's questions in ``order`` and without those ``off``.

    Raises ValueError naming unknown fields or a questionnaire with no question left.
    """
    report = ordered_report(order, off)
    return tuple(report if flow is REPORT else flow for flow in FLOWS)
