"""The classifier behind the understanding step, trained from examples when the bot starts.

scikit-learn, chosen by measurement (``docs/understanding.md``): TF-IDF over character n-grams
within words (robust to typos, missing accents and Polish and Romanian word endings) and over
words and pairs of words, feeding a linear SVM whose margins become scores the safety policy
can threshold. A second, smaller model of the same kind tells English, Polish and Romanian
apart; it keeps accents, which are the strongest sign of a language when people type them.

Training on about 5,700 examples takes about two seconds, in a process of its own while the bot
starts; classifying one message takes about 0.2 ms. The trained model is kept as plain arrays in
the cache folder (no pickled code, nothing people wrote: only the shipped examples' n-grams and
weights), so a later start with the same examples reads it instead of training.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from flows.columns import Columns
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
    word_ngrams: bool = True  # words and pairs of words, beside the character n-grams
    c: float = 1.0
    min_df: int = 1
    tol: float = 1e-4
    # Margins become scores that add up to 1 (a softmax); higher is more decisive.
    sharpness: float = 4.0


def _intent_text(text: str) -> str:
    return normalise(text[:READ_LIMIT])


def _language_text(text: str) -> str:
    return " ".join(text[:READ_LIMIT].casefold().split())


def char_grams(low: int, high: int, text: str) -> list[str]:
    """Character n-grams inside words, each word padded with a space at both ends."""
    grams: list[str] = []
    for word in text.split():
        padded = f" {word} "
        for n in range(low, high + 1):
            if len(padded) <= n:  # a short word counts once, whole
                grams.append(padded)
                break
            grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


_WORD = re.compile(r"\w+")


def word_grams(text: str) -> list[str]:
    """Words and pairs of neighbouring words."""
    words = _WORD.findall(text)
    return words + [f"{a} {b}" for a, b in pairwise(words)]


Features = Callable[[str], list[str]]
# How a model's features are made, by name: ("char", low, high) or ("word",). Kept as data so a
# trained model can be saved and loaded without pickling code.
FeatureSpec = tuple[str, ...]


def features_of(spec: FeatureSpec) -> Features:
    if spec[0] == "char":
        return partial(char_grams, int(spec[1]), int(spec[2]))
    if spec[0] == "word":
        return word_grams
    raise ValueError(f"unknown features {spec!r}")


class _Linear:
    """A fitted linear model over TF-IDF features, as plain arrays: what classifying needs.

    scikit-learn fits it (:func:`_fit`); classifying one message then costs finding its n-grams'
    columns (:class:`Columns`) and one small matrix product, about 0.1 ms, with no scikit-learn
    import at all.
    """

    def __init__(
        self,
        labels: list[str],
        intercept: np.ndarray,
        parts: list[tuple[FeatureSpec, Columns, np.ndarray, np.ndarray]],
        sharpness: float,
    ) -> None:
        self.labels = labels
        self.intercept = intercept
        self.parts = parts
        self.sharpness = sharpness
        self._features = [features_of(spec) for spec, _, _, _ in parts]

    def margins(self, text: str) -> np.ndarray:
        margins = self.intercept.astype(np.float64, copy=True)
        for features, (_, columns, idf, weights) in zip(self._features, self.parts, strict=True):
            found = columns.found(features(text))
            if not found.size:
                continue
            indices, counts = np.unique(found, return_counts=True)
            values = (1.0 + np.log(counts)) * idf[indices]
            values /= np.sqrt(values @ values)
            margins += values @ weights[indices]
        return margins

    def scores(self, text: str) -> dict[str, float]:
        margins = self.margins(text)
        if len(margins) == 1:  # two classes: one margin, for the second class
            margins = np.array([-margins[0], margins[0]])
        scaled = np.exp(self.sharpness * (margins - margins.max()))
        return dict(zip(self.labels, map(float, scaled / scaled.sum()), strict=True))


def _fit(
    texts: Sequence[str], labels: Sequence[str], specs: Sequence[FeatureSpec], settings: Settings
) -> tuple[_Linear, Any]:
    """Fit with scikit-learn; the plain model and scikit-learn's own pieces (for tests)."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    vectorizers = [
        TfidfVectorizer(analyzer=features_of(spec), sublinear_tf=True, min_df=settings.min_df, dtype=np.float32)
        for spec in specs
    ]
    matrix = hstack([v.fit_transform(texts) for v in vectorizers], format="csr")
    # A fixed seed for liblinear's shuffling: the same examples give the same model in any process
    # (unseeded, two trainings differed by about 2e-5 in their weights).
    estimator = LinearSVC(C=settings.c, class_weight="balanced", tol=settings.tol, random_state=0)
    estimator = estimator.fit(matrix, list(labels))
    coefficients = np.atleast_2d(estimator.coef_)
    parts, offset = [], 0
    for spec, vectorizer in zip(specs, vectorizers, strict=True):
        size = len(vectorizer.vocabulary_)
        weights = np.ascontiguousarray(coefficients[:, offset : offset + size].T, dtype=np.float32)
        grams = [""] * size
        for gram, column in vectorizer.vocabulary_.items():
            grams[int(column)] = str(gram)
        parts.append((spec, Columns(grams, keep=True), np.asarray(vectorizer.idf_, dtype=np.float64), weights))
        offset += size
    labels_out = [str(label) for label in estimator.classes_]
    model = _Linear(labels_out, np.atleast_1d(estimator.intercept_).astype(np.float64), parts, settings.sharpness)
    return model, (vectorizers, estimator)


class IntentClassifier:
    """Intents and languages, learned from examples. ``understand`` is what the engine calls."""

    def __init__(self, intents: _Linear, languages: _Linear | None, seconds: float, count: int) -> None:
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
        specs: list[FeatureSpec] = [("char", str(settings.char_ngrams[0]), str(settings.char_ngrams[1]))]
        if settings.word_ngrams:
            specs.append(("word",))
        intents, _ = _fit([_intent_text(e.text) for e in examples], [e.intent for e in examples], specs, settings)
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
            languages, _ = _fit(
                [_language_text(t) for _, t in texts],
                [locale for locale, _ in texts],
                [("char", "1", "4")],
                Settings(),
            )
        return cls(intents, languages, time.perf_counter() - started, len(examples))

    def understand(self, text: str) -> Understanding:
        normal = _intent_text(text)
        scores = self._intents.scores(normal)
        parts = tuple(_best(self._intents.scores(part)) for part in _parts(normal))
        words = len(_WORD.findall(normal))
        if self._languages is None:
            return Understanding(scores, parts=parts, words=words)
        languages = self._languages.scores(_language_text(text))
        language = max(languages, key=lambda k: languages[k])
        return Understanding(scores, language, languages[language], parts, words)

    def understand_many(self, texts: Iterable[str]) -> list[Understanding]:
        return [self.understand(text) for text in texts]


def _best(scores: dict[str, float]) -> tuple[str, float]:
    best = max(scores, key=lambda k: scores[k])
    return best, scores[best]


def _train(examples: Sequence[Example], language_texts: Mapping[str, Sequence[str]] | None) -> IntentClassifier:
    return IntentClassifier.train(examples, language_texts)


# ---------------------------------------------------------------- a trained model on disk
# Bump when the features or the model change: older files are then simply not used.
MODEL_FORMAT = 1


def fingerprint(examples: Sequence[Example], language_texts: Mapping[str, Sequence[str]] | None) -> str:
    """What a model was trained on, as a hash: its file is used only for exactly these."""
    digest = hashlib.sha256(f"reachable-model-{MODEL_FORMAT}-{Settings()!r}".encode())
    for example in examples:
        digest.update(f"\x00{example.locale}\x00{example.intent}\x00{example.text}".encode())
    for locale, texts in sorted((language_texts or {}).items()):
        digest.update(f"\x01{locale}".encode())
        for text in texts:
            digest.update(f"\x00{text}".encode())
    return digest.hexdigest()[:32]


def save(classifier: IntentClassifier, path: Path) -> None:
    """Write the model as plain arrays (no pickled code), atomically: a half-written file is never read."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"format": MODEL_FORMAT, "seconds": classifier.training_seconds}
    meta["examples"] = classifier.examples
    for name, model in (("intents", classifier._intents), ("languages", classifier._languages)):
        if model is None:
            continue
        meta[name] = {"labels": model.labels, "sharpness": model.sharpness, "specs": [p[0] for p in model.parts]}
        arrays[f"{name}.intercept"] = model.intercept
        for index, (_, columns, idf, weights) in enumerate(model.parts):
            if columns.grams is None:
                raise ValueError("a model read from its file is saved already")
            arrays[f"{name}.{index}.grams"] = np.array(columns.grams, dtype=np.str_)
            arrays[f"{name}.{index}.idf"] = idf
            arrays[f"{name}.{index}.weights"] = weights.astype(np.float32)
    arrays["meta"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".model-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)  # type: ignore[arg-type]
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load(path: Path) -> IntentClassifier | None:
    """A saved model, or None when there is none or it cannot be read (then train again)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        meta = json.loads(str(arrays["meta"]))
        if meta.get("format") != MODEL_FORMAT:
            return None
        models: dict[str, _Linear] = {}
        for name in ("intents", "languages"):
            if name not in meta:
                continue
            parts = []
            for index, spec in enumerate(meta[name]["specs"]):
                columns = Columns(arrays[f"{name}.{index}.grams"].tolist())
                weights = arrays[f"{name}.{index}.weights"].astype(np.float32, copy=False)
                parts.append((tuple(spec), columns, arrays[f"{name}.{index}.idf"], weights))
            models[name] = _Linear(meta[name]["labels"], arrays[f"{name}.intercept"], parts, meta[name]["sharpness"])
        return IntentClassifier(
            models["intents"], models.get("languages"), float(meta["seconds"]), int(meta["examples"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class TrainedInBackground:
    """An understander trained in a separate process while the rest of start-up goes on
    (importing the Telegram library, opening storage): both cores work, and this process never
    imports scikit-learn. The first message waits for training if it comes first.

    With a ``cache`` folder, the trained model is kept there as plain arrays under the hash of
    what it was trained on, and a later start with the same examples loads it instead (about
    0.1 s); any change to the examples trains afresh."""

    def __init__(
        self,
        examples: Sequence[Example],
        language_texts: Mapping[str, Sequence[str]] | None = None,
        cache: Path | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._future: Future[IntentClassifier] | None = None
        self._key = fingerprint(examples, language_texts)
        self._path = cache / f"understanding-{self._key}.npz" if cache is not None else None
        self._classifier = _TRAINED.get(self._key) or (load(self._path) if self._path is not None else None)
        if self._classifier is not None:
            self.source = "memory" if self._key in _TRAINED else "saved"
            _TRAINED[self._key] = self._classifier
            return
        self.source = "trained"
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._future = self._pool.submit(_train, list(examples), dict(language_texts or {}))

    def ready(self) -> IntentClassifier:
        with self._lock:
            if self._classifier is None and self._future is not None:
                try:
                    self._classifier = self._future.result()
                finally:
                    self._pool.shutdown()
                _TRAINED[self._key] = self._classifier
                if self._path is not None:
                    with contextlib.suppress(OSError):
                        save(self._classifier, self._path)
        assert self._classifier is not None
        return self._classifier

    def understand(self, text: str) -> Understanding:
        return self.ready().understand(text)


# Classifiers trained in this process, by the fingerprint of what they were trained on: an app
# built again from the same responses (tests, a restart of the console) does not train again.
_TRAINED: dict[str, IntentClassifier] = {}


def _parts(text: str) -> list[str]:
    """The parts of a message with more than one, each of a few words at least; else none."""
    parts = [p.strip() for p in _PARTS.split(text) if len(p.split()) >= MIN_PART_WORDS]
    return parts if len(parts) > 1 else []


def trained(examples: tuple[Example, ...], language_texts: tuple[tuple[str, tuple[str, ...]], ...]) -> IntentClassifier:
    """One classifier per set of examples in this process: engines built from the same
    responses share it."""
    key = fingerprint(examples, dict(language_texts))
    found = _TRAINED.get(key)
    if found is None:
        found = _TRAINED[key] = IntentClassifier.train(examples, dict(language_texts))
    return found
