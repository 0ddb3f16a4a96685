"""``reachable rasa export``: the parts of a Rasa project that derive from our own data.

Our examples (Rasa NLU format, in every language) are the single source of understanding for
both sides: the export writes them as Rasa's ``data/nlu.yml``, declares every intent in
``domain.yml``, and routes every intent (and Rasa's fallback) to the one action in
``data/rules.yml``. ``config.yml``, ``endpoints.yml`` and ``credentials.yml`` are written by
hand and left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.channels.rasa.adapter import ACTION, BUTTON_ENTITY, BUTTON_INTENT, DELIVER_ENTITY, DELIVER_INTENT
from responses import Responses

FORMAT = "3.1"
FALLBACK_INTENT = "nlu_fallback"  # Rasa's FallbackClassifier, when it is unsure
SESSION_MINUTES = 60  # Rasa starts a new session (and forgets slots) after an hour's silence
GENERATED = "# Written by `reachable rasa export` from the bot's own examples: edit those, then export again.\n"


def intents(responses: Responses) -> list[str]:
    return sorted({example.intent for example in responses.examples()})


def domain(responses: Responses) -> dict[str, Any]:
    return {
        "version": FORMAT,
        "intents": [*intents(responses), BUTTON_INTENT, DELIVER_INTENT],
        # What a button's payload and a staff message's trigger carry: declared, so that Rasa
        # takes them without a warning that would print them in its log.
        "entities": [BUTTON_ENTITY, DELIVER_ENTITY],
        "actions": [ACTION],
        "session_config": {
            "session_expiration_time": SESSION_MINUTES,
            "carry_over_slots_to_new_session": False,
        },
    }


def rules(responses: Responses) -> dict[str, Any]:
    """Every message, whatever Rasa reads it as, goes to our action."""
    routed = [*intents(responses), BUTTON_INTENT, DELIVER_INTENT, FALLBACK_INTENT]
    return {
        "version": FORMAT,
        "rules": [
            {"rule": f"{intent} goes to Reachable", "steps": [{"intent": intent}, {"action": ACTION}]}
            for intent in routed
        ],
    }


def nlu(responses: Responses) -> str:
    """Rasa's NLU training data: each intent with its examples in every language."""
    grouped: dict[str, list[str]] = {}
    for example in responses.examples():
        text = " ".join(example.text.split())
        if text and text not in grouped.setdefault(example.intent, []):
            grouped[example.intent].append(text)
    lines = [f'version: "{FORMAT}"', "nlu:"]
    for intent in sorted(grouped):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in grouped[intent]]
    return "\n".join(lines) + "\n"


def export(folder: Path, responses: Responses) -> list[Path]:
    """Write domain.yml, data/nlu.yml and data/rules.yml under ``folder``; the paths written."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    written = {
        folder / "domain.yml": GENERATED + yaml.safe_dump(domain(responses), sort_keys=False, allow_unicode=True),
        folder / "data" / "nlu.yml": GENERATED + nlu(responses),
        folder / "data" / "rules.yml": GENERATED + yaml.safe_dump(rules(responses), sort_keys=False),
    }
    for path, text in written.items():
        path.write_text(text, encoding="utf-8")
    return list(written)
