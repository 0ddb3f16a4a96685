"""The classifier behind the understanding step, trained from examples when the bot starts.

scikit-learn, chosen by measurement (``docs/understanding.md``): TF-IDF over character n-grams
within words (robust to typos, missing accents and Polish and Romanian word endings) and over
words, feeding a logistic regression whose probabilities the safety policy can threshold. A
second, smaller model of the same kind tells English, Polish and Romanian apart; it keeps
accents, which are the strongest sign of a language when people type them.

Training on a few thousand examples takes well under a second; classifying one message takes
well under a millisecond. Nothing is written anywhere: the model lives in memory.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from flows.text import normalise
from flows.understanding import Example, Understanding

# Where one part of a message ends and another begins: sentence ends, and words like "and then"
# in each language (normalised, so without accents). Polish "i" is "and".
_PARTS = re.compile(r"[.!?;,\n]+|\s(?:and|then|also|plus|but|oraz|potem|ale|a potem|i|si|apoi|dar|iar|dupa)\s")
MIN_PART_WORDS = 2
# Long messages are classified on their first part: bounded work, and the point of a message
# at 2am is rarely at the end of a 4,000-character text.
READ_LIMIT = 600


@dataclass(frozen=True, slots=True)
class Settings:
    """The model's settings, chosen by cross-validation on the shipped examples."""

    char_ngrams: tuple[int, int] = (2, 5)
    word_ngrams: tuple[int, int] | None = (1, 2)
    c: float = 1.0
    # Margins become scores that add up to 1 (a softmax); higher is more decisive.
    sharpness: float = 4.0


def _intent_text(text: str) -> str:
    return normalise(text[:READ_LIMIT])


def _language_text(text: str) -> str:
    return " ".join(text[:READ_LIMIT].casefold().split())


class _Model:
    """Character and word TF-IDF features and a linear SVM over them, learned by scikit-learn.

    Classifying one message goes through :meth:`scores`, which applies the fitted vocabulary,
    IDF weights and coefficients directly: scikit-learn's own ``transform`` costs about a
    millisecond a call in input checks, which matters on the reply path. ``scores_many`` uses
    scikit-learn's path and a test holds the two to the same answers.
    """

    def __init__(self, settings: Settings, chars: tuple[int, int], words: tuple[int, int] | None) -> None:
        self.vectorizers = [
            TfidfVectorizer(analyzer="char_wb", ngram_range=chars, sublinear_tf=True, dtype=np.float32)
        ]
        if words:
            self.vectorizers.append(
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=words,
                    sublinear_tf=True,
                    token_pattern=r"(?u)\b\w+\b",
                    dtype=np.float32,
                )
            )
        self.model = LinearSVC(C=settings.c, class_weight="balanced")
        self.sharpness = settings.sharpness
        self.labels: list[str] = []
        self._parts: list[tuple[Callable[[str], list[str]], dict[str, int], np.ndarray, np.ndarray]] = []
        self._intercept = np.zeros(0)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> _Model:
        features = hstack([v.fit_transform(texts) for v in self.vectorizers], format="csr")
        self.model.fit(features, list(labels))
        self.labels = [str(label) for label in self.model.classes_]
        coefficients = np.atleast_2d(self.model.coef_)
        offset = 0
        for vectorizer in self.vectorizers:
            size = len(vectorizer.vocabulary_)
            weights = np.ascontiguousarray(coefficients[:, offset : offset + size].T)
            self._parts.append((vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.idf_, weights))
            offset += size
        self._intercept = np.atleast_1d(self.model.intercept_)
        return self

    def _softmax(self, margins: np.ndarray) -> np.ndarray:
        if margins.shape[-1] == 1:  # two classes: one margin, for the second class
            margins = np.concatenate([-margins, margins], axis=-1)
        scaled = np.exp(self.sharpness * (margins - margins.max(axis=-1, keepdims=True)))
        return scaled / scaled.sum(axis=-1, keepdims=True)

    def scores(self, text: str) -> dict[str, float]:
        margins = self._intercept.copy()
        for analyze, vocabulary, idf, weights in self._parts:
            counts: dict[int, int] = {}
            for gram in analyze(text):
                index = vocabulary.get(gram)
                if index is not None:
                    counts[index] = counts.get(index, 0) + 1
            if not counts:
                continue
            indices = np.fromiter(counts, dtype=np.intp, count=len(counts))
            values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * idf[indices]
            values /= np.sqrt(values @ values)
            margins += values @ weights[indices]
        row = self._softmax(margins[np.newaxis, :])[0]
        return dict(zip(self.labels, map(float, row), strict=True))

    def scores_many(self, texts: Sequence[str]) -> list[dict[str, float]]:
        features = hstack([v.transform(texts) for v in self.vectorizers], format="csr")
        margins = np.asarray(self.model.decision_function(features), dtype=np.float64)
        rows = self._softmax(margins.reshape(len(texts), -1))
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in rows]


class IntentClassifier:
    """Intents and languages, learned from examples. ``understand`` is what the engine calls."""

    def __init__(self, intents: _Model, languages: _Model | None, seconds: float, count: int) -> None:
        self._intents = intents
        self._languages = languages
        self.training_seconds = seconds
        self.examples = count

    @classmethod
    def train(
        cls,
        examples: Sequence[Example],
        language_texts: Mapping[str, Sequence[str]] | None = None,
        settings: Settings | None = None,
    ) -> IntentClassifier:
        """Learn from ``examples``; languages from the examples' locales plus ``language_texts``
        (more text per locale, such as the bot's own messages)."""
        settings = settings or Settings()
        started = time.perf_counter()
        intents = _Model(settings, settings.char_ngrams, settings.word_ngrams).fit(
            [_intent_text(e.text) for e in examples], [e.intent for e in examples]
        )
        texts = [(e.locale, e.text) for e in examples]
        for locale, more in (language_texts or {}).items():
            texts.extend((locale, text) for text in more)
        # Words written the same in several languages ("hi", "sos") say nothing about which.
        locales_of: dict[str, set[str]] = {}
        for locale, text in texts:
            locales_of.setdefault(_language_text(text), set()).add(locale)
        texts = [(locale, text) for locale, text in texts if len(locales_of[_language_text(text)]) == 1]
        languages = None
        if len({locale for locale, _ in texts}) > 1:
            languages = _Model(Settings(c=1.0, sharpness=4.0), (1, 4), None).fit(
                [_language_text(t) for _, t in texts], [locale for locale, _ in texts]
            )
        return cls(intents, languages, time.perf_counter() - started, len(examples))

    def understand(self, text: str) -> Understanding:
        normal = _intent_text(text)
        scores = self._intents.scores(normal)
        parts = tuple(self._best(self._intents.scores(part)) for part in _parts(normal))
        if self._languages is None:
            return Understanding(scores, parts=parts)
        languages = self._languages.scores(_language_text(text))
        language = max(languages, key=lambda k: languages[k])
        return Understanding(scores, language, languages[language], parts)

    @staticmethod
    def _best(scores: dict[str, float]) -> tuple[str, float]:
        best = max(scores, key=lambda k: scores[k])
        return best, scores[best]

    def understand_many(self, texts: Sequence[str]) -> list[Understanding]:
        """Many at once (for evaluation): the same answers as ``understand``, faster."""
        listed = [_intent_text(t) for t in texts]
        scores = self._intents.scores_many(listed)
        split = [_parts(text) for text in listed]
        flat = self._intents.scores_many([part for parts in split for part in parts]) if any(split) else []
        found, at = [], 0
        languages = self._languages.scores_many([_language_text(t) for t in texts]) if self._languages else None
        for index, intent_scores in enumerate(scores):
            parts = tuple(self._best(s) for s in flat[at : at + len(split[index])])
            at += len(split[index])
            if languages is None:
                found.append(Understanding(intent_scores, parts=parts))
                continue
            best = max(languages[index], key=lambda k: languages[index][k])
            found.append(Understanding(intent_scores, best, languages[index][best], parts))
        return found


def _parts(text: str) -> list[str]:
    """The parts of a message with more than one, each of a few words at least; else none."""
    parts = [p.strip() for p in _PARTS.split(text) if len(p.split()) >= MIN_PART_WORDS]
    return parts if len(parts) > 1 else []


@lru_cache(maxsize=4)
def trained(examples: tuple[Example, ...], language_texts: tuple[tuple[str, tuple[str, ...]], ...]) -> IntentClassifier:
    """One classifier per set of examples in this process: engines built from the same
    responses share it."""
    return IntentClassifier.train(examples, dict(language_texts))
