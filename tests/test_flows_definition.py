"""Flows are data, checked when built; the engine stays free of frameworks and databases."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flows import Engine
from flows.definitions import FLOWS
from flows.diagram import mermaid
from flows.model import Flow, FlowError, Kind, Option, Step
from responses import Responses

FLOWS_DIR = Path(__file__).parent.parent / "flows"
FORBIDDEN = {"aiogram", "telegram", "rasa_sdk", "aiosqlite", "sqlite3", "aiohttp", "httpx"}


def test_flows_package_imports_no_framework_or_database() -> None:
    for path in FLOWS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def _build(responses: Responses, *steps: Step) -> Engine:
    return Engine(responses, flows=(Flow("test", steps),))


def test_a_dangling_next_is_named(responses: Responses) -> None:
    with pytest.raises(FlowError, match=r"step 'a' \(flow 'test'\) goes to 'nowhere', which does not exist"):
        _build(responses, Step("a", "menu.prompt", options=(Option("x", "option.yes", goto="nowhere"),)))


def test_a_duplicate_step_key_is_named(responses: Responses) -> None:
    step = Step("a", "menu.prompt", options=(Option("x", "option.yes", goto="a"),))
    with pytest.raises(FlowError, match="duplicate step key 'a'"):
        _build(responses, step, step)


def test_a_message_id_missing_from_english_is_named(responses: Responses) -> None:
    with pytest.raises(FlowError, match=r"message id 'menu\.no_such' used by step 'a'"):
        _build(responses, Step("a", "menu.no_such", options=(Option("x", "option.yes", goto="a"),)))


def test_every_problem_is_reported_at_once(responses: Responses) -> None:
    with pytest.raises(FlowError) as caught:
        _build(
            responses,
            Step("a", "missing.one", options=(Option("x", "option.yes", goto="gone"),)),
            Step("b", "menu.prompt", kind=Kind.TEXT, field="f", next="a"),
            Step("c", "menu.prompt"),
        )
    problems = "\n".join(caught.value.problems)
    assert "missing.one" in problems and "'gone'" in problems
    assert "sets no max_length" in problems and "no summary_label" in problems
    assert "step 'c' (flow 'test') is a menu with no options" in problems


def test_unknown_actions_and_reserved_option_keys_are_refused(responses: Responses) -> None:
    with pytest.raises(FlowError) as caught:
        _build(responses, Step("a", "menu.prompt", options=(Option("skip", "option.skip", goto="@teleport"),)))
    problems = "\n".join(caught.value.problems)
    assert "unknown action '@teleport'" in problems and "reserved option key 'skip'" in problems


def test_the_shipped_flows_build(engine: Engine) -> None:
    assert {"menu", "report.what", "review", "consent.keep", "emergency", "advice.overdose"} <= set(engine.steps)
    questions = [q.field for q in engine.steps.questions()]
    assert questions == ["what", "when", "where", "borough", "substances", "account", "app", "elsewhere", "wants"]


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_each_flow_has_an_up_to_date_diagram_beside_it(flow: Flow) -> None:
    assert flow.diagram is not None
    path = FLOWS_DIR / flow.diagram
    assert path.exists(), f"run `python -m flows.diagram` to write {path.name}"
    expected = mermaid([f for f in FLOWS if f.diagram == flow.diagram])
    assert path.read_text(encoding="utf-8") == expected, f"{path.name} is out of date: run `python -m flows.diagram`"
