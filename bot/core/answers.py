"""What a channel must do after one event, and how it is kept until it has gone out.

A turn that writes something (a report kept above all: its answer holds the secret code, shown
once and stored nowhere else) also keeps its answer, sealed, in the same transaction, and it is
forgotten only once every part of it has gone out. A crash in between leaves it in storage: it
goes out at the next chance (Telegram's update sent again, the console or web page coming back,
the person's next message), once, and nothing is kept twice. A turn that writes nothing keeps
nothing: it can simply be taken again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from responses import Rendered
from responses.render import RenderedOption
from storage import Unsent

FORMAT = 1


@dataclass(frozen=True, slots=True)
class Told:
    """An answer kept in storage until it has gone out.

    ``step``: the kind of durable step it answers (``report``, ``erase``, ``consent``, ``answer``,
    ``exit``, ``draft``, ``forget``): for the crash points and the log, never stored in clear.
    ``skip``: parts already out before a crash, not sent again. ``scrub``: once out, it must leave
    the files at once: it holds a new code, or names (by its keyed hash) a chat that keeps
    nothing else."""

    id: int
    step: str
    skip: int = 0
    scrub: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a channel must do after one event: optionally wipe the chat, then send ``messages``.

    ``remember``: this chat now has something stored (a report draft, or a report just kept or
    sent), so its message ids may be written down for the quick exit; before that they stay in
    memory. ``forget_ids``: the draft went and nothing was kept, so the ids written down go too.
    ``told``: kept in storage until it has gone out; the channel says when it has.
    ``earlier``: answers of earlier turns of this chat that never (wholly) went out, to go first.
    """

    messages: tuple[Rendered, ...]
    wipe: bool = False
    duplicate: bool = False
    limited: bool = False
    remember: bool = False
    forget_ids: bool = False
    urgent: bool = False  # emergency or suicide help: sent before others' replies when sends wait
    told: Told | None = None
    earlier: tuple[Delivery, ...] = ()


def seal(chat: str, delivery: Delivery, step: str) -> bytes:
    """The delivery as the bytes storage keeps (and encrypts): the chat it goes to, what it says,
    and what the channel does with it."""
    body = {
        "v": FORMAT,
        "chat": chat,
        "step": step,
        "messages": [
            {
                "text": m.text,
                "step": m.step,
                "options": [[o.key, o.label, o.selected, o.shown] for o in m.options],
            }
            for m in delivery.messages
        ],
        "wipe": delivery.wipe,
        "urgent": delivery.urgent,
        "remember": delivery.remember,
        "forget_ids": delivery.forget_ids,
        "scrub": delivery.told.scrub if delivery.told else False,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def opened(unsent: Unsent) -> tuple[str, Delivery]:
    """The chat an answer kept in storage goes to, and the delivery, from the part not yet out.
    Raises ValueError if it is not in a format this program knows."""
    body: Any = json.loads(unsent.body)
    if not isinstance(body, dict) or body.get("v") != FORMAT:
        raise ValueError("an answer kept in storage is not in a known format")
    messages = tuple(
        Rendered(
            text=str(m["text"]),
            options=tuple(RenderedOption(str(k), str(n), bool(on), str(shown)) for k, n, on, shown in m["options"]),
            step=m["step"] if isinstance(m["step"], str) else None,
        )
        for m in body["messages"]
    )
    told = Told(unsent.id, str(body["step"]), skip=unsent.sent, scrub=bool(body["scrub"]))
    delivery = Delivery(
        messages,
        wipe=bool(body["wipe"]) and unsent.sent == 0,  # a wipe comes before the first part
        urgent=bool(body["urgent"]),
        remember=bool(body["remember"]),
        forget_ids=bool(body["forget_ids"]),
        told=told,
    )
    return str(body["chat"]), delivery
