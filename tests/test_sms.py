"""Text messages: how many segments a text takes, and a turn's messages as few texts as fit."""

from __future__ import annotations

from bot.channels.rasa.sms import one_text, plain, segments


def test_segments_follow_the_gsm_alphabet_and_fall_back_to_ucs2() -> None:
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2 and segments("a" * 459) == 3
    assert segments("€" * 80) == 1 and segments("€" * 81) == 2  # the extension table costs two
    assert segments("ą" * 70) == 1 and segments("ą" * 71) == 2 and segments("ą" * 202) == 4


def test_plain_text_keeps_the_gsm_alphabet_where_it_can_and_has_no_blank_lines() -> None:
    said = plain("Zadzwoń – „teraz”.\n\n• Ștefan, Łódź… ✓")
    assert said == 'Zadzwon - "teraz".\n- Stefan, Lodz... *'
    assert segments(said) == 1
    assert plain("Ελλάδα Δ") == "Ελλάδα Δ"  # letters with no plain form are kept as they are


def test_a_turn_is_one_text_with_numbered_options_when_it_fits_and_cut_at_line_ends_when_not() -> None:
    [text] = one_text([("Is anyone in danger?", ["Yes", "No"]), ("Or type your answer.", [])])
    assert text == "Is anyone in danger?\n1 Yes\n2 No\nOr type your answer."
    long = [("\n".join(f"line {n} " + "x" * 40 for n in range(30)), ["Main menu"])]
    texts = one_text(long)
    assert len(texts) > 1 and all(segments(t) <= 3 for t in texts)
    assert texts[-1].endswith("1 Main menu") and "\n".join(texts).count("line ") == 30
    [word] = one_text([("y" * 2000, [])])[:1]
    assert segments(word) <= 3
