"""A message as the web page shows it: its text made HTML once, when it is shown.

The bot's messages have every phone number in them made a link that dials it; the person's own
words are only escaped. A session keeps each message this way, so a page made again (after
every message sent, and each time the script asks) only joins what was made before.
"""

from __future__ import annotations

import re
from typing import NewType

from markupsafe import Markup, escape

Html = NewType("Html", str)  # a message made HTML by message_html: escaped, its numbers linked

PHONE = re.compile(r"(?<![\w-])(?:999|111|101|116 123|18000|18001 \d{3}|0\d{2,4}(?: \d{3,4}){1,2})(?![\w-])")


def linked(text: str) -> Markup:
    """``text`` as HTML, every phone number in it a link that dials it."""
    parts, at = [], 0
    for found in PHONE.finditer(text):
        number = found.group(0)
        parts += [
            escape(text[at : found.start()]),
            Markup('<a href="tel:{0}">{1}</a>').format(number.replace(" ", ""), number),
        ]
        at = found.end()
    parts.append(escape(text[at:]))
    return Markup("").join(parts)


def message_html(text: str, mine: bool) -> Html:
    """What the page holds for a message: the person's own words escaped, the bot's linked.
    A plain string (the page marks it safe as it is shown), so a session's messages stay plain
    tuples of strings that the garbage collector does not walk."""
    return Html(str(escape(text) if mine else linked(text)))
