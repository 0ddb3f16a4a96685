"""Two `reachable run --webhook` processes on one PostgreSQL database behind one webhook address
behave as one bot, also when one is killed with SIGKILL mid-conversation (bench/instances.py
drives them; `make load-instances` runs the same with 1,000 people)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.instances import run
from fakes.postgres import PostgresServer

pytestmark = pytest.mark.slow
PEOPLE = 16


@pytest.mark.parametrize("kill", [False, True], ids=["both-running", "one-killed"])
async def test_two_instances_behind_one_address_answer_each_message_once_in_order(
    postgres: PostgresServer, tmp_path: Path, kill: bool
) -> None:
    outcome = await run(postgres, tmp_path, PEOPLE, kill_at=0.4 if kill else None, step_timeout=120)
    assert (outcome.finished, outcome.stuck) == (PEOPLE, []), "everyone got every reply"
    assert len(outcome.transcripts) == 1, "every chat alike: none lost, none out of order"
    assert len(outcome.summaries) == PEOPLE, "each summary reached the staff chat"
    assert outcome.too_many == 0, f"the two kept to Telegram's limits together: {outcome.too_many_by}"
    assert all(sent > 0 for sent in outcome.by_instance), "both instances took updates"
    assert outcome.unmarked_twice == 0, "a summary shown twice is marked as a possible repeat"
    if kill:
        # A message that left the killed instance just before it was written down as out may be
        # shown again (README: at least once, never silently twice): counted, not failed.
        assert outcome.killed_at_s is not None
    else:
        assert (outcome.twice, outcome.repeated) == (0, 0), "nothing shown twice"
