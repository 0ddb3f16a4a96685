"""`reachable understanding test`: how well the bot understands what people write, by
cross-validation, on held-out first messages, and on words typed at the report's questions."""

from __future__ import annotations

import datetime as dt
import functools
import sys
from pathlib import Path
from typing import Any

from flows import Engine
from flows.definitions import build_flows
from responses import Responses


def understanding_test(
    folder: Path | None, heldout: list[Path], folds: int, misses: bool, answers: list[Path] | None = None
) -> int:
    from flows.classifier import IntentClassifier
    from flows.evaluation import cross_validate, first_reply, render, score
    from responses.catalog import read_examples

    responses = Responses.load(folder)
    examples = responses.examples()
    if not heldout and not answers:
        report = cross_validate(examples, lambda part: IntentClassifier.train(part).understand_many, folds)
        title = f"Cross-validation, {folds} folds, {len(examples)} examples (each judged by a model that never saw it)"
        print(render(report, title, misses=misses))
        return 0
    tested = []
    for path in heldout:
        found, problems = read_examples(path, path.stem)
        for problem in problems:
            print(problem, file=sys.stderr)
        if any(p.severity == "error" for p in problems):
            return 2
        tested.extend(found)
    classifier = IntentClassifier.train(examples, dict(responses.language_samples()))
    flows = build_flows(responses.question_order, responses.questions_off)
    if tested:
        engine = Engine(responses, flows=flows, understander=classifier)
        report = score(tested, classifier.understand_many([e.text for e in tested]), helped=first_reply(engine))
        title = (
            f"Held-out: {len(tested)} messages never used in training, each sent as a first message to the bot; "
            f"model trained on {len(examples)} examples"
        )
        print(render(report, title, misses=misses))
    if answers:
        print()
        print(answers_test(responses, flows, classifier, answers, misses))
    return 0


def _fixed(moment: dt.datetime) -> dt.datetime:
    return moment


def answers_test(responses: Responses, flows: Any, classifier: Any, paths: list[Path], misses: bool) -> str:
    """Words typed at the report's questions (held out), each at its question: how many were
    understood as meant."""
    from flows.engine import EngineConfig
    from flows.evaluation import AnswerResult, answer_in_report, in_report_rate
    from responses.catalog import read_answer_cases

    results: list[AnswerResult] = []
    for path in paths:
        cases, now = read_answer_cases(path, path.stem)
        config = EngineConfig(forwarding=True)
        engine = Engine(responses, config, flows=flows, understander=classifier, clock=functools.partial(_fixed, now))
        results.extend(answer_in_report(engine, case) for case in cases)
    lines = [in_report_rate(results)]
    if misses:
        lines.append("")
        lines.append("typed answers not understood as meant (step: words -> expected / got):")
        for result in results:
            if not result.right:
                case = result.case
                lines.append(f"  [{case.locale}] {case.step}: {case.text} -> {' '.join(case.expect)} / {result.got}")
    return "\n".join(lines)
