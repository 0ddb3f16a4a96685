"""A person using the web chat without JavaScript, over real HTTP: forms posted with the page's
CSRF token and cookie, redirects followed, and the page read back as a browser shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import aiohttp


@dataclass
class Item:
    mine: bool
    text: str = ""
    offered: list[str] = field(default_factory=list)
    lang: str = ""
    id: str = ""


class PageReader(HTMLParser):
    """The conversation, the buttons on offer and the CSRF token of a chat page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[Item] = []
        self.buttons: list[tuple[str, str]] = []  # (label, value)
        self.csrf = ""
        self.lang = ""
        self._in: str | None = None
        self._button: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        elif tag == "li" and a.get("class") in ("bot", "mine"):
            self.items.append(Item(mine=a.get("class") == "mine", lang=a.get("lang") or "", id=a.get("id") or ""))
        elif tag == "p" and self.items and self._in is None:
            self._in = "p"
        elif tag == "li" and self.items and a.get("class") is None:
            self._in = "offered"
            self.items[-1].offered.append("")
        elif tag == "input" and a.get("name") == "csrf":
            self.csrf = a.get("value") or ""
        elif tag == "button" and a.get("name") == "choice":
            self._button = a.get("value") or ""
            self.buttons.append(("", self._button))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "li") and self._in is not None:
            self._in = None
        if tag == "button":
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._in == "p":
            self.items[-1].text += data
        elif self._in == "offered":
            self.items[-1].offered[-1] += data
        elif self._button is not None:
            label, value = self.buttons[-1]
            self.buttons[-1] = (label + data, value)


def read(page: str) -> PageReader:
    reader = PageReader()
    reader.feed(page)
    return reader


class WebPerson:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[self.base])
        self.session = aiohttp.ClientSession(cookie_jar=self.jar)
        self.page = read("")
        self.status = 0
        self.location = ""

    async def close(self) -> None:
        await self.session.close()

    async def _settle(self, response: aiohttp.ClientResponse) -> None:
        self.status = response.status
        self.location = str(response.url)
        if str(response.url).startswith(self.base):
            self.page = read(await response.text())

    async def open(self) -> PageReader:
        """Load the page; a redirect away from the site (the quick exit's neutral site) is
        noted, not followed: tests reach nothing beyond this machine."""
        async with self.session.get(f"{self.base}/", allow_redirects=False) as response:
            if response.status in (301, 302, 303, 307, 308):
                self.status, self.location = response.status, response.headers.get("Location", "")
                return self.page
            await self._settle(response)
        return self.page

    async def post(self, path: str, **fields: str) -> PageReader:
        data = {"csrf": self.page.csrf, **fields}
        async with self.session.post(f"{self.base}{path}", data=data, allow_redirects=False) as response:
            self.status = response.status
            target = response.headers.get("Location", "")
        if self.status == 303 and target.startswith("/"):
            return await self.open()
        self.location = target
        return self.page

    async def say(self, text: str) -> PageReader:
        return await self.post("/say", text=text)

    async def tap(self, label: str) -> PageReader:
        offered = {text.strip(): v for text, v in self.page.buttons}
        if label not in offered:
            raise AssertionError(f"no button {label!r} on the page; there are {list(offered)}")
        value = offered[label]
        return await self.post("/choose", choice=value)

    async def leave(self) -> PageReader:
        return await self.post("/exit")
