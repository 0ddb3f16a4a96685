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
        self.numbers: dict[str, str] = {}  # value -> the number its button shows
        self.csrf = ""
        self.lang = ""
        self.refresh = ""  # where a page that sends the browser on (meta refresh) sends it
        self.error = ""  # what the page says beside the message box
        self.draft = ""  # what the message box holds
        self.tel: list[str] = []  # every tel: link, in order
        self._number = False
        self._in: str | None = None
        self._button: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if not self._page_tag(tag, a):
            self._chat_tag(tag, a)

    def _page_tag(self, tag: str, a: dict[str, str]) -> bool:
        """What the page says around the conversation; False if ``tag`` is not about that."""
        if tag == "html":
            self.lang = a.get("lang", "")
        elif tag == "meta" and a.get("http-equiv") == "refresh":
            self.refresh = a.get("content", "").partition("url=")[2]
        elif tag == "a" and a.get("href", "").startswith("tel:"):
            self.tel.append(a["href"][4:])
        elif tag == "p" and a.get("id") == "error":
            self._in = "error"
        elif tag == "textarea":
            self._in = "draft"
        elif tag == "input" and a.get("name") == "csrf":
            self.csrf = a.get("value", "")
        else:
            return False
        return True

    def _chat_tag(self, tag: str, a: dict[str, str]) -> None:
        if tag == "span" and a.get("class") == "num" and self._button is not None:
            self._number = True
        elif tag == "li" and a.get("class") in ("bot", "mine"):
            self.items.append(Item(mine=a.get("class") == "mine", lang=a.get("lang", ""), id=a.get("id", "")))
        elif tag == "p" and self.items and self._in is None:
            self._in = "p"
        elif tag == "li" and self.items and "class" not in a:
            self._in = "offered"
            self.items[-1].offered.append("")
        elif tag == "button" and a.get("name") == "choice":
            self._button = a.get("value", "")
            self.buttons.append(("", self._button))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "li", "textarea") and self._in is not None:
            self._in = None
        if tag == "span":
            self._number = False
        if tag == "button":
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._number and self._button is not None:
            self.numbers[self._button] = data.strip().rstrip(".")
        elif self._in == "error":
            self.error += data
        elif self._in == "draft":
            self.draft += data
        elif self._in == "p":
            self.items[-1].text += data
        elif self._in == "offered":
            self.items[-1].offered[-1] += data
        elif self._button is not None:
            label, value = self.buttons[-1]
            self.buttons[-1] = (label + data, value)

    def close(self) -> None:
        super().close()
        self.buttons = [(label.strip(), value) for label, value in self.buttons]


def read(page: str) -> PageReader:
    reader = PageReader()
    reader.feed(page)
    reader.close()
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

    async def open(self, path: str = "/") -> PageReader:
        """Load the page; a redirect away from the site (the quick exit's neutral site) is
        noted, not followed: tests reach nothing beyond this machine. A page of ours that sends
        the browser on (``/left``) sets ``location`` to where."""
        async with self.session.get(f"{self.base}{path}", allow_redirects=False) as response:
            if response.status in (301, 302, 303, 307, 308):
                self.status, self.location = response.status, response.headers.get("Location", "")
                if self.location.startswith("/"):  # our own (the page on the way out, or a new chat)
                    return await self.open(self.location)
                return self.page
            await self._settle(response)
        if self.page.refresh:
            self.location = self.page.refresh
        return self.page

    async def post(self, path: str, **fields: str) -> PageReader:
        data = {"csrf": self.page.csrf, **fields}
        async with self.session.post(f"{self.base}{path}", data=data, allow_redirects=False) as response:
            self.status = response.status
            target = response.headers.get("Location", "")
            body = await response.text()
        if self.status == 303 and target == "/left":
            async with self.session.get(f"{self.base}/left", allow_redirects=False) as left:
                self.status = left.status
                self.location = read(await left.text()).refresh
            return self.page
        if self.status == 303 and target.startswith("/"):
            return await self.open()
        self.location = target
        if body.startswith("<!doctype html>"):  # a refusal is still the page, with what went wrong
            self.page = read(body)
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
