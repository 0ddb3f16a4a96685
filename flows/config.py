"""What differs between deployments and changes what the engine offers: who a report may be
sent to, and the decision policy for free text."""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.definitions import SEXUAL_HARMS
from flows.state import State
from flows.understanding import HARMS, Policy


@dataclass(frozen=True, slots=True)
class Offer:
    """Someone a summary can be sent to: offered only when the report names one of ``only_for``
    (if any). ``via_support``: the support team passes it on (the words say so)."""

    key: str
    only_for: tuple[str, ...] = ()
    via_support: bool = False

    @property
    def words(self) -> tuple[str, str]:
        """The button and the "who reads it, and how" sentence of this recipient."""
        who = f"recipient.{self.key}.who" + (".via_support" if self.via_support else "")
        return f"recipient.{self.key}.label", who


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What differs between deployments and changes what the engine offers.

    ``recipients``: who a summary may be sent to, each with a real destination. ``forwarding``
    is a shorthand (for previews and tests) for the support team and a SOIT officer through it.
    ``matching``: a matching contact is set up (``flows/match_flows.py``).
    """

    forwarding: bool = False
    recipients: tuple[Offer, ...] = ()
    policy: Policy = field(default_factory=Policy)
    matching: bool = False  # a matching contact is set: naming who did it is offered

    def may_name(self, what: tuple[str, ...]) -> bool:
        """Naming who did it is offered for a report about a harm, when matching is set up."""
        return self.matching and bool(set(what) & set(HARMS))

    @property
    def offers(self) -> tuple[Offer, ...]:
        if self.recipients or not self.forwarding:
            return self.recipients
        return (Offer("support"), Offer("soit", SEXUAL_HARMS, via_support=True))

    def offer(self, key: str) -> Offer:
        return next((o for o in self.offers if o.key == key), Offer(key))

    def offers_for(self, state: State, what: tuple[str, ...] | None = None) -> tuple[Offer, ...]:
        """Who this report may be sent to: a recipient limited to some harms only when the report
        names one of them ("what happened", or ``what`` given)."""
        if what is None:
            answer = state.answers.get("what", ())
            what = answer if isinstance(answer, tuple) else ()
        return tuple(o for o in self.offers if not o.only_for or set(o.only_for) & set(what))
