"""Random conversations: whatever anyone sends, in any order, the engine keeps its promises."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import callbacks
from flows import Engine, EngineConfig, Reply, State
from flows.effects import CheckReport, EraseReport, RelayToStaff, StoreReport
from flows.events import Choice, Command, Event, Relayed, Resume, Text, Unsupported, parse_typed
from responses import Renderer, Responses
from tests.helpers import FixedTokens

RESPONSES = Responses.load()
ENGINE = Engine(RESPONSES, EngineConfig(forwarding=True), tokens=FixedTokens())
RENDERER = Renderer(RESPONSES, 90, 24)
STEP_KEYS = sorted(ENGINE.steps)
OPTION_KEYS = sorted({o.key for s in ENGINE.steps.values() for o in s.options} | {"skip", "done", "leave", "next_page"})
COMMANDS = [
    "start",
    "help",
    "report",
    "advice",
    "services",
    "emergency",
    "exit",
    "delete",
    "language",
    "cancel",
    "check",
]
TRICKY = [
    "\u202eevil\u202c",  # right-to-left override
    "zero\u200bwidth\u200djoin",
    "مرحبا، تعرضت للاعتداء",
    "x" * 10_000,
    "1, 2, 3, 99",
    "/delete 7K2P-QX9D-M4TA-8BWE",
    "\x00\x01\x1b[2J",
    "😀" * 300,
    "skip",
    "Done",
]

texts = st.one_of(st.text(max_size=300), st.sampled_from(TRICKY), st.text(min_size=4000, max_size=10_000))
events: st.SearchStrategy[Event] = st.one_of(
    texts.map(Text),
    st.builds(Command, st.sampled_from(COMMANDS), st.one_of(st.just(""), st.text(max_size=40))),
    st.builds(
        Choice,
        st.one_of(st.sampled_from(STEP_KEYS), st.text(max_size=20)),
        st.one_of(st.sampled_from(OPTION_KEYS), st.text(max_size=20)),
    ),
    st.builds(Unsupported, st.sampled_from(["sticker", "photo", "voice", "video", "location", "contact"])),
    st.just(Resume()),
    st.builds(Relayed, st.just("7K2P-QX9D"), st.sampled_from(["relay", "ack", "closed"]), st.text(max_size=200)),
)
# Buttons a person could really press on the screen in front of them, to reach deep states.
ROUTES = st.lists(
    st.one_of(
        events,
        st.sampled_from(["/report", "Start", "1", "skip", "done", "Yes, it's right", "Yes, keep it", "1, 2"]).map(
            parse_typed
        ),
    ),
    max_size=40,
)


def check_replies(state: State, replies: tuple[object, ...]) -> None:
    for reply in replies:
        rendered = RENDERER.render(reply, state.locale)  # type: ignore[arg-type]
        assert rendered.text.strip(), "an empty message"
        assert all(len(part) <= 4096 for part in rendered.parts())
        for option in rendered.options:
            assert rendered.step is not None
            assert len(callbacks.encode(rendered.step, option.key).encode()) <= 64
            assert 0 < len(option.text) <= 120


def effect_replies(effect: object) -> list[Reply]:
    if isinstance(effect, EraseReport):
        return [*effect.erased, *effect.not_found]
    if isinstance(effect, CheckReport):
        return [*effect.not_found, *(r for rs in effect.by_status.values() for r in rs)]
    if isinstance(effect, RelayToStaff):
        return [*effect.sent, *effect.closed]
    return []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROUTES)
def test_any_sequence_of_anything_keeps_the_promises(sequence: list[Event]) -> None:
    state = State()
    for event in sequence:
        before = state
        outcome = ENGINE.handle(state, event)
        state = outcome.state
        check_replies(state, outcome.replies)
        if any(isinstance(e, StoreReport) for e in outcome.effects):
            # Nothing is kept unless the person answered a consent question just now.
            assert before.step.startswith("consent."), before.step
        # Every event gets an answer: in the replies, or carried by an effect whose outcome decides it.
        carried = [r for e in outcome.effects for r in effect_replies(e)]
        check_replies(state, tuple(carried))
        assert outcome.replies or carried or not isinstance(event, (Text, Command, Choice, Unsupported, Resume))
        # The state survives a round trip through storage unchanged.
        assert State.from_json(state.to_json()) == state


@settings(max_examples=200, deadline=None)
@given(
    ROUTES,
    st.sampled_from(
        ["help, he's not breathing", "I think he OVERDOSED", "my friend won't wake up", "call an ambulance"]
    ),
)
def test_emergency_words_reach_emergency_guidance_from_anywhere(sequence: list[Event], words: str) -> None:
    state = State()
    for event in sequence:
        state = ENGINE.handle(state, event).state
    outcome = ENGINE.handle(state, Text(words))
    carried = [r for e in outcome.effects for r in effect_replies(e)]
    messages = [r.message for r in (*outcome.replies, *carried)]
    # Right after emergency help, the next thing (what to do if they are not breathing),
    # never the same block again.
    expected = {"emergency.cpr", "emergency.still"} if state.step.startswith("emergency") else {"emergency.guidance"}
    assert expected & set(messages), (state.step, messages)
    check_replies(outcome.state, outcome.replies)
