"""What free text means: an intent, how sure we are, and the language it is written in.

The understanding step runs wherever someone types something the screen does not expect. It is
trained when the bot starts from the charity-editable examples in ``responses/`` (Rasa's NLU
format, so the same files train a Rasa assistant). Nothing typed is kept: text is classified in
memory and only the intent and a confidence band may reach a log.

Safety decides recall-first (:func:`decide`): when an overdose or suicidal thoughts are
plausible, that help comes first, because a false alarm costs one tap on "Carry on where I was"
and a miss can cost a life. When nothing is clear, the engine asks a short triage question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from flows.events import Hint

# Help that cannot wait: these interrupt anything, even a question being answered.
URGENT = ("overdose", "suicide")
# Being hurt: each gets its own screen of safety, support and reporting.
HARMS = ("assault", "drugged", "robbery", "threats", "violence")
SAFETY = URGENT + HARMS


@dataclass(frozen=True, slots=True)
class Example:
    """One training example: what someone might type, what it means, and where it was written."""

    text: str
    intent: str
    locale: str
    path: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class AnswerCase:
    """Words typed at a question of the report, and what they must be understood as: option
    keys, ``borough:<name>``, or a move (``skip``, ``done``, ``none``, ``back``, ``menu``)."""

    step: str
    text: str
    expect: tuple[str, ...]
    locale: str


@dataclass(frozen=True, slots=True)
class Understanding:
    """Scores (probabilities that add up to 1) for every intent, and the likeliest language."""

    scores: Mapping[str, float]
    language: str = ""
    language_confidence: float = 0.0
    # The likeliest intent of each part of a longer message ("he robbed me and now he's
    # blackmailing me"), with its score: how a second harm is noticed.
    parts: tuple[tuple[str, float], ...] = ()
    words: int = 0  # how many words the message has: a short one carries little evidence

    def ranked(self) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda item: (-item[1], item[0]))

    @property
    def intent(self) -> str:
        return self.ranked()[0][0] if self.scores else "other"

    @property
    def confidence(self) -> float:
        return self.ranked()[0][1] if self.scores else 0.0

    def score(self, intent: str) -> float:
        return self.scores.get(intent, 0.0)


class Understander(Protocol):
    def understand(self, text: str) -> Understanding: ...


@dataclass(frozen=True, slots=True)
class Policy:
    """Thresholds on an intent's score. Set by cross-validation (see ``docs/understanding.md``)."""

    urgent: float = 0.2  # overdose or suicide from here on: that help first
    harm: float = 0.2  # a harm from here on gets its own help
    second_harm: float = 0.2  # a second harm named in the same message, from here on
    part_harm: float = 0.6  # ... or a harm that one part of the message is clearly about
    part_urgent: float = 0.6  # an overdose or suicide that one part of a long message is about
    overdose_too: float = 0.25  # after suicide help, overdose first aid too from here on
    sure: float = 0.4  # anything else is acted on from here on; below, a triage question
    in_answer: float = 0.5  # in words typed as an answer to a question, urgent help from here on
    likely: float = 0.05  # intents offered by the triage question
    language: float = 0.8  # switch language from here on
    trusted_hint: float = 0.8  # another assistant's intent (Rasa's) counts from this confidence on
    language_min_letters: int = 8  # too short to tell a language apart below this
    # A message of one or two words ("no", "idk", "tonight") says little: scores are flat, so
    # it must be clearer before anything is decided ("not breathing" is caught by the
    # emergency phrases; anything unclear gets the triage question, which offers 999).
    short: int = 2
    short_urgent: float = 0.45
    short_harm: float = 0.4
    short_sure: float = 0.5
    # Unsure between urgent help and something harmless ("i want to finish this": the report,
    # or ending it all?): when a harmless intent leads from here on and the urgent score is
    # below ``contested_urgent``, the triage question asks, offering that help first.
    contested_lead: float = 0.5
    contested_urgent: float = 0.5


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about free text: intents to answer, in order, or a triage question with
    ``likely`` intents to offer when ``intents`` is empty."""

    intents: tuple[str, ...]
    likely: tuple[str, ...] = ()


def decide(understood: Understanding, policy: Policy = Policy()) -> Decision:
    """Recall-first: urgent help, then harms (up to two), then the likeliest intent if sure."""
    score = understood.score
    chosen: list[str] = []
    if 0 < understood.words <= policy.short:
        policy = replace(
            policy,
            urgent=policy.short_urgent,
            harm=policy.short_harm,
            second_harm=policy.short_harm,
            sure=policy.short_sure,
        )
    chosen.extend(_urgent(understood, policy))
    harms = sorted((h for h in HARMS if score(h) >= policy.second_harm), key=lambda h: -score(h))
    if harms and score(harms[0]) >= policy.harm:
        for intent, part_score in understood.parts:
            if intent in HARMS and part_score >= policy.part_harm and intent not in harms:
                harms.append(intent)
        chosen.extend(harms[: 1 if chosen else 2])
    if chosen and _contested(understood, chosen, policy):
        likely = (*(i for i in chosen if i in URGENT), understood.intent)
        return Decision((), likely=likely)
    if chosen:
        return Decision(tuple(chosen))
    if understood.confidence >= policy.sure:
        return Decision((understood.intent,))
    likely = tuple(i for i, s in understood.ranked() if s >= policy.likely and i not in ("other", "greeting"))
    return Decision((), likely=likely)


def _urgent(understood: Understanding, policy: Policy) -> list[str]:
    """Overdose and suicide help, in the order they are needed."""
    score = understood.score
    parts = {i for i, s in understood.parts if i in URGENT and s >= policy.part_urgent}
    overdose = score("overdose") >= policy.urgent or "overdose" in parts
    suicide = score("suicide") >= policy.urgent or "suicide" in parts
    if suicide and (not overdose or score("suicide") >= score("overdose")):
        # Suicidal thoughts get their own help first; overdose first aid follows only when an
        # overdose is likely too ("did 4ml on top of wine and i can feel myself going").
        return ["suicide", "overdose"] if score("overdose") >= policy.overdose_too else ["suicide"]
    if overdose:
        # A likely overdose that may be deliberate: emergency guidance, then suicide help.
        return ["overdose", "suicide"] if suicide else ["overdose"]
    return []


def _contested(understood: Understanding, chosen: list[str], policy: Policy) -> bool:
    """Urgent help chosen on a low score while a harmless intent clearly leads."""
    urgent = [i for i in chosen if i in URGENT]
    return (
        bool(urgent)
        and understood.intent not in (*SAFETY, "need_help")
        and understood.confidence >= policy.contested_lead
        and max(understood.score(i) for i in urgent) < policy.contested_urgent
    )


def with_hint(understood: Understanding, hint: Hint | None, policy: Policy = Policy()) -> Understanding:
    """Recall-first from either side: a confident enough hint raises its intent's score to the
    hint's confidence. Our own scores stay as they are, so a hint never hides an emergency we
    see; an intent we do not know is ignored."""
    if hint is None or hint.confidence < policy.trusted_hint or hint.intent not in understood.scores:
        return understood
    scores = dict(understood.scores)
    scores[hint.intent] = max(scores[hint.intent], min(hint.confidence, 1.0))
    return replace(understood, scores=scores)


def urgent_in_answer(understood: Understanding, policy: Policy = Policy()) -> str | None:
    """The urgent intent in words typed as an answer (an account of what happened), if any.
    Stricter than :func:`decide`: an account of the past often names what happened then."""
    best = max(URGENT, key=understood.score)
    return best if understood.score(best) >= policy.in_answer else None


def band(confidence: float) -> str:
    """A confidence band, the only trace of a classification that may reach a log."""
    return "high" if confidence >= 0.7 else "medium" if confidence >= 0.4 else "low"
