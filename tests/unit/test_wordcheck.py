"""voices.wordcheck: normalisation, word alignment, truncations, takes and the suggestion (pure Python)."""
from __future__ import annotations

import pytest

from voices import wordcheck as wc

PASSAGE = "She ran her hand through the sunshine, and the light was fading fast."


def words(text: str) -> list[str]:
    return [w.text for w in wc.normalise(text)]


# -- normalisation ------------------------------------------------------------------------------------------


def test_case_punctuation_and_apostrophes_are_ignored() -> None:
    assert words('"Put your FOOT on the rock," she said; it’s a bit of a struggle!') == \
        "put your foot on the rock she said its a bit of a struggle".split()
    assert words("it's") == words("It’s") == words("its") == ["its"]
    assert words("the neighbours' car") == ["the", "neighbours", "car"]


def test_hyphens_and_dashes_split_words() -> None:
    assert words("a well-known sister-in-law — then") == "a well known sister in law then".split()
    assert words("well-known") == words("well known")


@pytest.mark.parametrize("text, spoken", [
    ("2 cats", "two cats"),
    ("0", "zero"),
    ("13", "thirteen"),
    ("21", "twenty one"),
    ("40", "forty"),
    ("105", "one hundred five"),
    ("one hundred and five", "one hundred five"),
    ("1,500", "one thousand five hundred"),
    ("1000000", "one million"),
    ("3.5", "three point five"),
    ("50%", "fifty percent"),
    ("1st", "first"),
    ("2nd", "second"),
    ("3RD", "third"),
    ("12th", "twelfth"),
    ("21st", "twenty first"),
    ("40th", "fortieth"),
    ("100th", "one hundredth"),
    ("1990", "nineteen ninety"),
    ("1905", "nineteen oh five"),
    ("1900", "nineteen hundred"),
    ("2005", "two thousand five"),
    ("2024", "twenty twenty four"),
    ("5000", "five thousand"),
    ("rock & roll", "rock and roll"),
])
def test_numbers_are_compared_as_the_words_they_are_read_as(text: str, spoken: str) -> None:
    assert words(text) == spoken.split()


def test_digits_and_words_match_each_other() -> None:
    assert words("2 cats in 1990") == words("two cats in nineteen ninety")
    assert words("the 21st day") == words("the twenty-first day")


def test_an_and_between_ordinary_words_is_kept() -> None:
    assert words("bread and butter") == ["bread", "and", "butter"]
    assert words("a hundred and one") == ["a", "hundred", "one"]  # 'and' inside a number goes
    assert words("a hundred and more") == ["a", "hundred", "and", "more"]


def test_each_word_keeps_its_span_in_the_text_for_the_page() -> None:
    text = "Clare walked 21 miles."
    found = wc.normalise(text)
    assert [(w.text, text[w.start:w.end]) for w in found] == [
        ("clare", "Clare"), ("walked", "walked"), ("twenty", "21"), ("one", "21"), ("miles", "miles")]


def test_asr_annotations_are_not_words() -> None:
    assert wc.strip_annotations(" [BLANK_AUDIO] And so (upbeat music) we go ♪ *sighs* home.") == "And so we go home."
    assert words(wc.strip_annotations("[Music]")) == []


# -- truncation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("expected, heard", [
    ("sunshine", "sunshinn"),  # the last sound cut, and the ASR completed the word wrongly
    ("sunshine", "sunshi"),
    ("sunshine", "sun"),
    ("bath", "bat"),
    ("and", "an"),
    ("mind", "mine"),
    ("walked", "walk"),
])
def test_cut_short_forms_are_truncations(expected: str, heard: str) -> None:
    assert wc.is_truncation(expected, heard)


@pytest.mark.parametrize("expected, heard", [
    ("brother", "brothers"),  # longer: something added, not cut
    ("car", "cart"),
    ("walked", "walks"),      # a different ending
    ("quiet", "quite"),       # letters swapped
    ("mud", "mad"),           # a vowel changed
    ("bad", "bat"),           # three letters: a changed last letter is another word
    ("home", "hole"),
    ("calm", "come"),
    ("and", "a"),             # one letter says nothing
    ("light", "light"),       # the same word
    ("twenty", "two"),        # nothing in common at the end... and not a prefix
    ("sunshine", "shine"),    # the start is missing, not the end
])
def test_ordinary_substitutions_are_not_truncations(expected: str, heard: str) -> None:
    assert not wc.is_truncation(expected, heard)


def test_numbers_are_never_truncations() -> None:
    assert not wc.is_truncation("21", "2")


# -- alignment and one render ------------------------------------------------------------------------------


def test_a_perfect_transcript_has_no_errors() -> None:
    result = wc.check(PASSAGE, "she ran her hand through the sunshine and the light was fading fast")
    assert result.errors == 0 and result.wer == 0.0
    assert all(step.op == wc.EQUAL for step in result.steps)
    assert len(result.steps) == len(wc.normalise(PASSAGE))


def test_a_dropped_function_word_is_reported_by_its_passage_index() -> None:
    result = wc.check(PASSAGE, "She ran hand through the sunshine, and the light was fading fast.")
    assert result.dropped == [2]  # 'her'
    assert result.truncated == [] and result.substituted == [] and result.inserted == []
    assert result.errors == 1 and result.wer == pytest.approx(1 / 13)


def test_a_cut_word_is_a_truncation_not_a_substitution() -> None:
    result = wc.check(PASSAGE, "She ran her hand through the sunshinn, and the light was fading fas.")
    assert result.truncated == [(6, "sunshinn"), (12, "fas")]
    assert result.substituted == [] and result.dropped == []
    assert result.problems == 2 and result.errors == 2


def test_substitutions_and_insertions() -> None:
    result = wc.check(PASSAGE, "She ran her hand through the moonshine, and oh the light was fading fast.")
    assert result.substituted == [(6, "moonshine")]
    assert result.inserted == ["oh"]
    assert result.truncated == [] and result.dropped == []
    assert result.problems == 0 and result.errors == 2


def test_a_dropped_ending_of_the_passage() -> None:
    result = wc.check(PASSAGE, "She ran her hand through the sunshine, and the light was")
    assert result.dropped == [11, 12]


def test_words_the_asr_splits_or_joins_are_not_errors() -> None:
    assert wc.check("every day we met", "everyday we met").errors == 0
    assert wc.check("the sunshine", "the sun shine").errors == 0


def test_a_cut_word_the_asr_wrote_as_two_lines_up_with_the_word_it_was_cut_from() -> None:
    result = wc.check("the sunshine", "the sun shin")
    assert result.truncated == [(1, "sun shin")] and result.errors == 1


def test_a_cut_word_lines_up_with_its_own_word_when_a_word_is_also_missing() -> None:
    # 'sun' could pair with either 'the' or 'sunshine' at the same count; the one it was cut from wins
    result = wc.check("the sunshine", "sun")
    assert result.dropped == [0] and result.truncated == [(1, "sun")]


def test_an_empty_transcript_drops_every_word() -> None:
    result = wc.check(PASSAGE, " [BLANK_AUDIO]")
    assert result.dropped == list(range(13)) and result.wer == 1.0


def test_alignment_covers_every_passage_and_transcript_word_once() -> None:
    ref = words(PASSAGE)
    hyp = words("she hand through a the sunshi and light fading fast fast")
    steps = wc.align(ref, hyp)
    assert sorted(i for s in steps for i in s.ref) == list(range(len(ref)))
    assert sorted(j for s in steps for j in s.hyp) == list(range(len(hyp)))


def test_to_json_names_the_words_for_the_page() -> None:
    passage = wc.normalise(PASSAGE)
    data = wc.check(passage, "She ran hand through the sunshinn and the light was fading fast").to_json(passage)
    assert data["dropped"] == [{"index": 2, "word": "her"}]
    assert data["truncated"] == [{"index": 6, "word": "sunshine", "heard": "sunshinn"}]
    assert data["wer"] == round(2 / 13, 4)
    assert {"op": "drop", "ref": [2], "hyp": []} in data["alignment"]


# -- takes, status and the suggestion ------------------------------------------------------------------------


def test_takes_give_the_worst_and_the_mean_and_how_often_each_word_failed() -> None:
    takes = [wc.check(PASSAGE, PASSAGE),
             wc.check(PASSAGE, "She ran hand through the sunshine and the light was fading fast"),
             wc.check(PASSAGE, "She ran hand through the sunshinn and the light was fading fast"),
             None]  # the ASR failed on this take
    summary = wc.summarise(takes)
    assert summary["takes"] == 4 and summary["scored"] == 3
    assert summary["wer_worst"] == round(2 / 13, 4)
    assert summary["wer_mean"] == round((0 + 1 / 13 + 2 / 13) / 3, 4)
    assert summary["problems_worst"] == 2
    assert summary["dropped"] == {"2": 2} and summary["truncated"] == {"6": 1}


def test_no_scored_take_gives_no_numbers() -> None:
    assert wc.summarise([None, None])["wer_worst"] is None
    assert wc.summarise([])["scored"] == 0


def test_status_needs_every_take_word_checked_to_call_a_checkpoint_clean() -> None:
    clean, dropped = wc.check(PASSAGE, PASSAGE), wc.check(PASSAGE, "She ran hand")
    assert wc.status([clean, clean], [False, False]) == wc.CLEAN
    assert wc.status([clean, dropped], [False, False]) == wc.PROBLEM
    assert wc.status([clean, None], [False, False]) == wc.UNKNOWN
    assert wc.status([clean, None], [False, True]) == wc.PROBLEM   # a cut-off sound needs no ASR
    assert wc.status([], [False]) == wc.UNKNOWN                      # no ASR ran
    assert wc.status([], [True]) == wc.PROBLEM


def test_the_suggestion_names_the_latest_clean_checkpoint_and_the_first_with_problems() -> None:
    s = wc.suggest([("epoch_0001", wc.CLEAN), ("epoch_0002", wc.CLEAN), ("epoch_0003", wc.PROBLEM),
                    ("epoch_0004", wc.CLEAN), ("epoch_0005", wc.PROBLEM)])
    assert (s.latest_clean, s.first_problem) == ("epoch_0004", "epoch_0003")
    assert "epoch_0004 is the latest checkpoint" in s.text and "they start at epoch_0003" in s.text
    assert "Accent verdicts stay yours" in s.text


def test_the_suggestion_when_all_are_clean_none_are_or_none_could_be_checked() -> None:
    all_clean = wc.suggest([("a", wc.CLEAN), ("b", wc.CLEAN)])
    assert (all_clean.latest_clean, all_clean.first_problem) == ("b", None)
    none_clean = wc.suggest([("a", wc.PROBLEM), ("b", wc.PROBLEM)])
    assert (none_clean.latest_clean, none_clean.first_problem) == (None, "a")
    unchecked = wc.suggest([("a", wc.UNKNOWN), ("b", wc.PROBLEM)])
    assert unchecked.first_problem == "b" and "could not be word-checked" in unchecked.text
    nothing = wc.suggest([("a", wc.UNKNOWN)])
    assert (nothing.latest_clean, nothing.first_problem) == (None, None)
    assert "add an ASR backend" in nothing.text
    assert nothing.to_json() == {"latest_clean": None, "first_problem": None, "text": nothing.text}
