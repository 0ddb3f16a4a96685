"""Typed words as the options on the screen: a number ("2", "1, 3"), a label ("Skip"), more words a
charity lists for an option ("yesterday" for This week), yes or no, words of only one label
("tina", "keep it"), an entry of a list ("Lambeth"), or "menu"; and, at the report's questions,
what ``flows/answering.py`` reads inside a sentence."""

from __future__ import annotations

from flows.answering import Answering, Reading
from flows.lexicon import Lexicon
from flows.model import Kind, Step
from flows.navigation import Navigator
from flows.replies import OptionRef
from flows.state import State
from flows.text import label_key

# "menu" inside a message of at most this many words goes to the menu ("main menu pls").
MENU_WORDS = 6


class Labels:
    """Labels and word lists in the form typed answers are compared in, worked out once."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._keys: dict[tuple[str, str], str] = {}

    def key(self, locale: str, message_id: str) -> str:
        """A label as typed answers are compared to it; the text never changes once loaded."""
        found = self._keys.get((locale, message_id))
        if found is None:
            found = self._keys[(locale, message_id)] = label_key(self.lexicon.text(locale, message_id))
        return found

    def all_words(self, group: str) -> tuple[str, ...]:
        """A word list in every language at once."""
        lexicon = self.lexicon
        return tuple(dict.fromkeys(w for locale in lexicon.locales for w in lexicon.words(locale, group)))


class TypedOptions:
    def __init__(self, lexicon: Lexicon, labels: Labels, answering: Answering, navigator: Navigator) -> None:
        self.lexicon = lexicon
        self.labels = labels
        self.answering = answering
        self.nav = navigator
        self._word_sets: dict[str, frozenset[str]] = {}
        self._menu_words: frozenset[str] | None = None
        self._entry_keys: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}  # list entries, as compared

    def read(self, step: Step, state: State, text: str) -> Reading:
        """What typed words answer at ``step``: an option by its label, number or listed words
        first; at the report's questions, summary and consent, also words inside a sentence,
        dates, places and moves (``flows/answering.py``)."""
        picked = self.named(step, state, text)
        if picked or not (self.nav.in_report(step) or step.key == "report.intro" or step.is_question):
            return Reading(keys=picked)
        if step.kind is Kind.TEXT and step.field is not None and step.validate is None:
            # Free words ("in your own words..."): only a move typed alone is not the answer.
            move = self.answering.move(self.answering.strip_filler(label_key(text), state.locale), alone=True)
            return Reading(move=move) if move in ("previous", "skip") and len(text) < 40 else Reading()
        if step.kind is Kind.TEXT and step.validate is None:
            return Reading()
        shown = self.nav.options(step, state)
        multi = step.kind is Kind.MULTI
        return self.answering.read(step.key, multi, step.skippable, shown, state.locale, text)

    def named(self, step: Step, state: State, text: str) -> tuple[str, ...]:
        """Options named by typed numbers or labels ("2", "Skip", "1, 3"), by more words a
        charity lists for them ("yesterday" for This week), by yes or no, or, at a question, by
        words of only one label ("tina", "keep it"); empty if none."""
        shown = self.nav.options(step, state)
        by_label = {self.labels.key(state.locale, o.label): o.key for o in shown}
        whole = label_key(text)
        if whole in by_label:
            return (by_label[whole],)
        named = self._named_option(step, state, shown, whole)
        if named is not None:
            return (named,)
        parts = [p for p in whole.replace(",", " ").split() if p]
        if not parts or not all(p.isdecimal() and 1 <= int(p) <= len(shown) for p in parts):
            return ()
        if len(parts) > 1 and step.kind is not Kind.MULTI:
            return ()
        keys = [shown[int(p) - 1].key for p in parts]
        if len(keys) > 1 and any(k in ("skip", "leave", "done", "back") for k in keys):
            return ()
        return tuple(dict.fromkeys(keys))

    def word_set(self, group: str) -> frozenset[str]:
        """A word list in every language at once, in the form typed answers are compared in."""
        found = self._word_sets.get(group)
        if found is None:
            found = self._word_sets[group] = frozenset(self.answering.words(group))
        return found

    def says_menu(self, text: str, locale: str = "en", alone: bool = False) -> bool:
        """ "menu" or "back" typed alone, in any of the bot's languages, or "menu" in a message of
        a few words ("main menu pls", "wroc do menu"). ``alone``: where free words are the answer
        ("in your own words", a reply to staff), only the menu words by themselves ("we went back
        to his home" is an answer, not "home")."""
        typed = label_key(text)
        if not typed or len(typed) > 40:
            return False
        if self._menu_words is None:
            # "back" outside the report goes to the menu too; inside it, to the question before.
            self._menu_words = self.word_set("menu") | self.word_set("previous")
        stripped = self.answering.strip_filler(typed, locale)
        if typed in self._menu_words or stripped in self._menu_words:
            return True
        return not alone and len(typed.split()) <= MENU_WORDS and bool(self.answering.words("menu").spans(typed))

    def says_yes_or_no(self, text: str) -> bool:
        return label_key(text) in self.word_set("yes") | self.word_set("no")

    def known(self, locale: str, group: str, text: str) -> str | None:
        """The list entry ``text`` names: exactly, or as the start of only one entry."""
        keyed = self._entry_keys.get((locale, group))
        if keyed is None:
            entries = self.lexicon.words(locale, group) or self.lexicon.words("en", group)
            keyed = self._entry_keys[(locale, group)] = tuple((e, label_key(e)) for e in entries)
        typed = label_key(text)
        exact = [e for e, key in keyed if key == typed]
        starts = [e for e, key in keyed if len(typed) >= 3 and key.startswith(typed)]
        found = exact or starts
        return found[0] if len(found) == 1 else None

    def _named_option(self, step: Step, state: State, shown: list[OptionRef], typed: str) -> str | None:
        if not typed:
            return None
        for option in shown:
            if typed in self.word_set(f"answers:{option.label}"):
                return option.key
        for answer in ("yes", "no"):
            if typed not in self.word_set(answer):
                continue
            if step.dynamic == "likely":  # "Is anyone in danger right now?"
                return "danger" if answer == "yes" else "other"
            starting = [
                o.key
                for o in shown
                if self.labels.key(state.locale, o.label).split(" ")[0].strip(",.!?") in self.word_set(answer)
            ]
            return starting[0] if len(starting) == 1 else None
        if not step.is_question:
            return None
        return self._by_words(state, shown, typed)

    def _by_words(self, state: State, shown: list[OptionRef], typed: str) -> str | None:
        """The one option whose label holds every typed word (or a word starting with it), the
        best covered when several do: "tina" is Crystal meth (Tina), "keep it" is Yes, keep it."""
        words = [w for w in typed.replace(",", " ").split() if w]
        if not words or len(words) > 6:
            return None
        best: list[tuple[float, str]] = []
        for option in shown:
            label = [w.strip("()'\",.") for w in self.labels.key(state.locale, option.label).split()]
            label = [w for w in label if w]
            if all(any(lw == w or (len(w) >= 3 and lw.startswith(w)) for lw in label) for w in words):
                best.append((len(words) / len(label), option.key))
        best.sort(reverse=True)
        if not best or (len(best) > 1 and best[0][0] == best[1][0]):
            return None
        return best[0][1]
