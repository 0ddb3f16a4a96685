"""Naming who did it, as data: offered after a report about a harm is kept (and again through
``/check CODE``), never pushed. What is named is sealed; nobody reads it unless someone else
names the same person, and then only the matching contact learns that two reports match.
The person decides what happens next."""

from __future__ import annotations

from flows.identifiers import KINDS
from flows.model import MENU, Flow, Kind, Option, Step

NAME_LENGTH = 200  # enough for an app and a profile name, a name and a place

MATCH = Flow(
    name="match",
    diagram="match.mmd",
    steps=(
        Step(
            key="match.offer",
            prompt="match.offer",
            options=(
                Option("add", "match.option.add", goto="match.kind"),
                Option("not_now", "match.option.not_now", goto="@match_done"),
            ),
        ),
        Step(
            key="match.kind",
            prompt="match.kind",
            options=(
                *(Option(kind, f"match.kind.{kind}", goto=f"match.{kind}") for kind in KINDS),
                Option("not_now", "match.option.not_now", goto="@match_done"),
            ),
        ),
        *(
            Step(key=f"match.{kind}", prompt=f"match.{kind}", kind=Kind.TEXT, max_length=NAME_LENGTH, next="@identify")
            for kind in KINDS
        ),
        Step(
            key="match.more",
            prompt="match.more",
            options=(
                Option("add", "match.option.another", goto="match.kind"),
                Option("finished", "match.option.finished", goto="@match_done"),
            ),
        ),
        # Someone else named the same person: the person decides what happens next.
        Step(
            key="match.found",
            prompt="match.found.choices",
            options=(
                Option("talk", "match.option.talk", goto="@match_talk"),
                Option("police", "match.option.police", goto="@match_police"),
                Option("nothing", "match.option.nothing", goto=MENU),
            ),
        ),
    ),
)
