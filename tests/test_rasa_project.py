"""The ready Rasa project in deploy/rasa: what derives from our examples is current, every
message Rasa may read reaches our action, and nothing in it keeps conversations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.channels.rasa.adapter import ACTION
from bot.cli import main
from bot.core.settings import Settings
from responses import Responses

PROJECT = Path(__file__).resolve().parent.parent / "deploy" / "rasa"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_committed_project_is_what_the_export_writes_today(tmp_path: Path) -> None:
    assert main(["rasa", "export", "--out", str(tmp_path)]) == 0
    for name in ("domain.yml", "data/nlu.yml", "data/rules.yml"):
        assert (tmp_path / name).read_text() == (PROJECT / name).read_text(), f"run `reachable rasa export` ({name})"


def test_every_intent_rasa_can_read_is_declared_and_routed_to_our_action() -> None:
    domain, rules, nlu = load(PROJECT / "domain.yml"), load(PROJECT / "data/rules.yml"), load(PROJECT / "data/nlu.yml")
    assert domain["version"] == nlu["version"] == rules["version"] == "3.1"
    assert domain["actions"] == [ACTION]
    declared = set(domain["intents"])
    trained = {item["intent"] for item in nlu["nlu"]}
    assert trained <= declared
    routed = {}
    for rule in rules["rules"]:
        [intent_step, action_step] = rule["steps"]
        routed[intent_step["intent"]] = action_step["action"]
    assert set(routed) == declared | {"nlu_fallback"}
    assert set(routed.values()) == {ACTION}


def test_the_examples_are_ours_in_every_language() -> None:
    nlu = load(PROJECT / "data/nlu.yml")
    exported = {(item["intent"], line[2:].strip()) for item in nlu["nlu"] for line in item["examples"].splitlines()}
    examples = Responses.load().examples()
    assert exported == {(e.intent, " ".join(e.text.split())) for e in examples}
    assert {e.locale for e in examples} == {"en", "pl", "ro"}


def test_a_charitys_own_examples_are_exported_too(tmp_path: Path) -> None:
    overlay = tmp_path / "charity" / "en"
    overlay.mkdir(parents=True)
    (overlay / "nlu.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: overdose\n  examples: |\n    - hes gone floppy on the sofa and grey\n'
    )
    assert main(["rasa", "export", str(tmp_path / "charity"), "--out", str(tmp_path / "out")]) == 0
    assert "    - hes gone floppy on the sofa and grey" in (tmp_path / "out/data/nlu.yml").read_text()


def test_the_project_keeps_no_conversations_and_finds_the_action_server() -> None:
    endpoints = load(PROJECT / "endpoints.yml")
    assert "tracker_store" not in endpoints and "event_broker" not in endpoints  # in memory only
    default = Settings.model_fields["rasa_actions_listen"].default
    assert endpoints["action_endpoint"]["url"] == f"http://{default}/webhook"
    session = load(PROJECT / "domain.yml")["session_config"]
    assert session["session_expiration_time"] <= 60 and session["carry_over_slots_to_new_session"] is False
    config = load(PROJECT / "config.yml")
    assert config["recipe"] == "default.v1"
    assert {"FallbackClassifier", "LogisticRegressionClassifier"} <= {c["name"] for c in config["pipeline"]}
    [policy] = config["policies"]
    assert policy["name"] == "RulePolicy" and policy["core_fallback_action_name"] == ACTION


def test_the_shipped_rasa_serves_only_platform_set_senders_and_carries_the_token_from_the_environment() -> None:
    credentials = load(PROJECT / "credentials.yml")
    assert set(credentials) == {"twilio"}  # no rest, callback or socketio: the caller picks the sender there
    # Unquoted, so that Rasa expands it (it does not expand a quoted "${...}").
    assert "  token: ${REACHABLE_RASA_TOKEN}\n" in (PROJECT / "endpoints.yml").read_text()
    logging = load(PROJECT / "logging.yml")
    assert logging["formatters"]["capture_python_warnings"]["()"] == "logging.captureWarnings"
    assert logging["loggers"]["py.warnings"]["level"] == "ERROR"
    assert {"data", "reachable_nonce"} <= set(load(PROJECT / "domain.yml")["entities"])
