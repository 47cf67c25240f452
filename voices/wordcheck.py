"""Word-level screening of a render: what an ASR heard against the passage it should have said.

Pure Python (no numpy, no torch), so the host's unit tests and any interpreter can run it.

    normalise(text)            -> the words both sides are compared as, each with its span in the text
    check(passage, transcript) -> the alignment, word error rate, and the words dropped, inserted,
                                  substituted and cut short
    summarise(takes)           -> one checkpoint's takes: worst and mean, and which passage words failed
    suggest(checkpoints)       -> the latest checkpoint with no dropped or cut words, and the first with them

The suggestion is a pointer for the listener, never a verdict: accents are judged by ear.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable

# -- normalisation ---------------------------------------------------------------------------------------

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"), (100, "hundred"))
ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                 "nine": "ninth", "twelve": "twelfth"}
NUMBER_WORDS = frozenset(ONES + TENS[2:] + [name for _, name in SCALES])
APOSTROPHES = "'’‘ʼ`´"
# a number (1,000 / 3.5 / 21st / 50%), a word (letters, with inner apostrophes: it's, o'clock), or &
TOKEN = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:st|nd|rd|th)?%?"
                   rf"|[^\W\d_]+(?:[{APOSTROPHES}][^\W\d_]+)*"
                   r"|&", re.IGNORECASE)
NUMBER = re.compile(r"(?P<int>\d+(?:,\d{3})*)(?:\.(?P<frac>\d+))?(?P<ord>st|nd|rd|th)?(?P<pct>%)?")
# what an ASR writes for sounds that are not words: [BLANK_AUDIO], (music), ♪, *sighs*
ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫]")


@dataclass(frozen=True)
class Word:
    text: str   # normalised: lower case, no punctuation, numbers as words
    start: int  # the span in the original text it came from (several words can share one: "21" -> twenty one)
    end: int


def cardinal(n: int) -> str:
    """English words for a non-negative integer, without 'and': 105 -> 'one hundred five'."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    for size, name in SCALES:
        if n >= size:
            head, rest = divmod(n, size)
            return f"{cardinal(head)} {name}" + ("" if rest == 0 else " " + cardinal(rest))
    raise AssertionError(n)  # unreachable: every n >= 100 has a scale


def ordinal(n: int) -> str:
    """21 -> 'twenty first', 100 -> 'one hundredth'."""
    *head, last = cardinal(n).split()
    if last in ORDINAL_WORDS:
        last = ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def year(n: int) -> str:
    """How a four-digit year is said: 1990 -> 'nineteen ninety', 1905 -> 'nineteen oh five',
    2005 -> 'two thousand five', 2024 -> 'twenty twenty four'."""
    if 2000 <= n <= 2009:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{cardinal(high)} hundred"
    return f"{cardinal(high)} {'oh ' + ONES[low] if low < 10 else cardinal(low)}"


def is_year(digits: str) -> bool:
    """A bare four-digit number in the range people read as a year (1100-1999, 2000-2099)."""
    return len(digits) == 4 and 1100 <= int(digits) <= 2099


def number_to_words(token: str) -> str:
    match = NUMBER.fullmatch(token)
    if not match:
        return token
    digits = match["int"].replace(",", "")
    n = int(digits)
    if match["ord"]:
        words = ordinal(n)
    elif match["frac"] is None and match["pct"] is None and "," not in match["int"] and is_year(digits):
        words = year(n)
    else:
        words = cardinal(n)
    if match["frac"] is not None:
        words += " point " + " ".join(ONES[int(d)] for d in match["frac"])
    if match["pct"]:
        words += " percent"
    return words


def strip_annotations(transcript: str) -> str:
    """Drop what an ASR writes for non-speech ([BLANK_AUDIO], (music), ♪): they are not words of the passage."""
    return " ".join(ANNOTATION.sub(" ", transcript).split())


def _drop_and_in_numbers(words: list[Word]) -> list[Word]:
    """'one hundred and five' -> 'one hundred five', so the British reading matches the digits."""
    keep = []
    for i, word in enumerate(words):
        if (word.text == "and" and 0 < i < len(words) - 1 and words[i - 1].text in ("hundred", "thousand", "million")
                and words[i + 1].text in NUMBER_WORDS):
            continue
        keep.append(word)
    return keep


def normalise(text: str) -> list[Word]:
    """The words of a text as the comparison sees them: case folded, punctuation and apostrophes dropped
    (it's -> its), hyphenated words split (well-known -> well known), numbers as words (2 -> two,
    21st -> twenty first, 1990 -> nineteen ninety, 3.5 -> three point five, 50% -> fifty percent)."""
    text = unicodedata.normalize("NFKC", text)
    words: list[Word] = []
    for match in TOKEN.finditer(text):
        token = match.group().casefold()
        if token == "&":
            spoken = "and"
        elif token[0].isdigit():
            spoken = number_to_words(token)
        else:
            spoken = "".join(c for c in token if c not in APOSTROPHES)
        words += [Word(part, match.start(), match.end()) for part in spoken.split()]
    return _drop_and_in_numbers(words)


# -- alignment ------------------------------------------------------------------------------------------

EQUAL, SUBSTITUTE, TRUNCATE, DROP, INSERT = "equal", "substitute", "truncate", "drop", "insert"
MIN_CUT_LETTERS = 2        # a cut form keeps at least two letters: 'a' for 'and' says nothing
MIN_LAST_SOUND_LETTERS = 4  # below four letters a changed last letter is a different word (bad/bat)


def is_truncation(expected: str, heard: str) -> bool:
    """Whether `heard` is `expected` cut short. Two rules, both about the word's ending going missing:

    - the heard word is a proper prefix of the expected one, at least two letters long ('sunshi' for
      'sunshine', 'an' for 'and', 'bat' for 'bath');
    - the two have the same length (four letters or more) and differ only in the last letter: the final
      sound was cut and the ear (or the ASR) completed it with another ('sunshinn' for 'sunshine',
      'mine' for 'mind').

    A longer heard word ('brothers' for 'brother'), a different ending ('walks' for 'walked'), a changed
    vowel ('mud' -> 'mad', 'quite' for 'quiet') and numbers are ordinary substitutions."""
    if heard == expected or not heard.isalpha() or not expected.isalpha():
        return False
    if len(heard) < len(expected):
        return len(heard) >= MIN_CUT_LETTERS and expected.startswith(heard)
    return (len(heard) == len(expected) >= MIN_LAST_SOUND_LETTERS and heard[:-1] == expected[:-1])


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _unlikeness(a: str, b: str) -> float:
    """0 for words that share their beginning, 1 for words that share nothing: only breaks ties between
    alignments with equally many errors, so a cut word lines up with the word it was cut from."""
    return 1.0 - _common_prefix(a, b) / max(len(a), len(b), 1)


@dataclass(frozen=True)
class Step:
    op: str                 # equal, substitute, truncate, drop, insert
    ref: tuple[int, ...]    # passage word indices (two when the ASR wrote two words as one: 'every day' -> 'everyday')
    hyp: tuple[int, ...]    # transcript word indices (two when it split one: 'sunshine' -> 'sun shine')


def _moves(ref: list[str], hyp: list[str], i: int, j: int) -> Iterable[tuple[int, int, str, tuple[int, float]]]:
    """Every way to reach cell (i, j): (di, dj, op, cost); the cost is (errors, tie-breaker)."""
    if i and j:
        e, h = ref[i - 1], hyp[j - 1]
        if e == h:
            yield 1, 1, EQUAL, (0, 0.0)
        else:
            yield 1, 1, (TRUNCATE if is_truncation(e, h) else SUBSTITUTE), (1, _unlikeness(e, h))
    if i and j >= 2:  # the ASR split one passage word in two
        joined = hyp[j - 2] + hyp[j - 1]
        if joined == ref[i - 1]:
            yield 1, 2, EQUAL, (0, 0.0)
        elif is_truncation(ref[i - 1], joined):
            yield 1, 2, TRUNCATE, (1, _unlikeness(ref[i - 1], joined))
    if i >= 2 and j and ref[i - 2] + ref[i - 1] == hyp[j - 1]:  # it joined two passage words into one
        yield 2, 1, EQUAL, (0, 0.0)
    if i:
        yield 1, 0, DROP, (1, 1.0)
    if j:
        yield 0, 1, INSERT, (1, 1.0)


def align(ref: list[str], hyp: list[str]) -> list[Step]:
    """The cheapest word alignment (Levenshtein over words, split and joined words free), in passage order."""
    inf = (float("inf"), float("inf"))
    cost = [[inf] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    back: list[list[tuple[int, int, str] | None]] = [[None] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    cost[0][0] = (0, 0.0)
    for i in range(len(ref) + 1):
        for j in range(len(hyp) + 1):
            for di, dj, op, (errors, unlike) in _moves(ref, hyp, i, j):
                before = cost[i - di][j - dj]
                total = (before[0] + errors, before[1] + unlike)
                if total < cost[i][j]:
                    cost[i][j], back[i][j] = total, (di, dj, op)
    steps: list[Step] = []
    i, j = len(ref), len(hyp)
    while i or j:
        di, dj, op = back[i][j]
        steps.append(Step(op, tuple(range(i - di, i)), tuple(range(j - dj, j))))
        i, j = i - di, j - dj
    return steps[::-1]


# -- one render -----------------------------------------------------------------------------------------


@dataclass
class WordCheck:
    transcript: str
    words: int                                  # passage words
    errors: int                                 # substitutions (cut words included) + drops + insertions
    dropped: list[int] = field(default_factory=list)                     # passage word indices
    truncated: list[tuple[int, str]] = field(default_factory=list)       # (passage index, what was heard)
    substituted: list[tuple[int, str]] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else float(self.errors > 0)

    @property
    def problems(self) -> int:
        """Dropped and cut words: what the suggestion is about (a substituted word may be the ASR's slip)."""
        return len(self.dropped) + len(self.truncated)

    def to_json(self, passage_words: list[Word]) -> dict:
        def word(i: int) -> dict:
            return {"index": i, "word": passage_words[i].text}

        return {"transcript": self.transcript, "wer": round(self.wer, 4), "errors": self.errors,
                "dropped": [word(i) for i in self.dropped],
                "truncated": [{**word(i), "heard": h} for i, h in self.truncated],
                "substituted": [{**word(i), "heard": h} for i, h in self.substituted],
                "inserted": self.inserted,
                "alignment": [{"op": s.op, "ref": list(s.ref), "hyp": list(s.hyp)} for s in self.steps]}


def check(passage: str | list[Word], transcript: str) -> WordCheck:
    ref = passage if isinstance(passage, list) else normalise(passage)
    hyp = normalise(strip_annotations(transcript))
    ref_text, hyp_text = [w.text for w in ref], [w.text for w in hyp]
    steps = align(ref_text, hyp_text)
    result = WordCheck(transcript=transcript, words=len(ref), errors=0, steps=steps)
    for step in steps:
        heard = " ".join(hyp_text[j] for j in step.hyp)
        if step.op == DROP:
            result.dropped.append(step.ref[0])
        elif step.op == INSERT:
            result.inserted.append(heard)
        elif step.op == TRUNCATE:
            result.truncated.append((step.ref[0], heard))
        elif step.op == SUBSTITUTE:
            result.substituted.append((step.ref[0], heard))
        if step.op != EQUAL:
            result.errors += 1
    return result


# -- takes and checkpoints ------------------------------------------------------------------------------


def summarise(takes: list[WordCheck | None]) -> dict:
    """One checkpoint over its takes (None: a take the ASR could not score): worst and mean word error
    rate, and for each passage word that failed, in how many takes it was dropped or cut."""
    scored = [t for t in takes if t is not None]
    dropped: dict[int, int] = {}
    truncated: dict[int, int] = {}
    for take in scored:
        for i in set(take.dropped):
            dropped[i] = dropped.get(i, 0) + 1
        for i in {i for i, _ in take.truncated}:
            truncated[i] = truncated.get(i, 0) + 1
    return {"takes": len(takes), "scored": len(scored),
            "wer_worst": round(max(t.wer for t in scored), 4) if scored else None,
            "wer_mean": round(sum(t.wer for t in scored) / len(scored), 4) if scored else None,
            "problems_worst": max((t.problems for t in scored), default=None),
            "problems_mean": round(sum(t.problems for t in scored) / len(scored), 3) if scored else None,
            "dropped": {str(i): n for i, n in sorted(dropped.items())},
            "truncated": {str(i): n for i, n in sorted(truncated.items())}}


CLEAN, PROBLEM, UNKNOWN = "clean", "problem", "unknown"


def status(word_takes: list[WordCheck | None], lost_takes: list[bool]) -> str:
    """'problem' when any take dropped or cut a word, or its signal shows words lost (a sound cut off, or
    silent output); 'clean' only when every take was word-checked and none did; else 'unknown'.
    word_takes is empty when no ASR ran."""
    if any(lost_takes) or any(t is not None and t.problems for t in word_takes):
        return PROBLEM
    if word_takes and all(t is not None for t in word_takes):
        return CLEAN
    return UNKNOWN


@dataclass
class Suggestion:
    latest_clean: str | None   # a checkpoint label
    first_problem: str | None
    text: str

    def to_json(self) -> dict:
        return {"latest_clean": self.latest_clean, "first_problem": self.first_problem, "text": self.text}


def suggest(checkpoints: list[tuple[str, str]]) -> Suggestion:
    """checkpoints: (label, status) in training order. Names the latest checkpoint with no dropped or cut
    words in any take, and the first where they appear; a pointer for the listener, not a verdict."""
    clean = [label for label, s in checkpoints if s == CLEAN]
    problems = [label for label, s in checkpoints if s == PROBLEM]
    latest, first = (clean[-1] if clean else None), (problems[0] if problems else None)
    tail = " Accent verdicts stay yours: listen before you choose."
    if latest and first:
        text = f"{latest} is the latest checkpoint with no dropped or cut words in any take; they start at {first}."
    elif latest:
        text = f"{latest} is the latest checkpoint, and no checkpoint dropped or cut a word in any take."
    elif first:
        text = (f"dropped or cut words start at {first}; no checkpoint was screened clean"
                + (" (the others could not be word-checked)." if len(problems) < len(checkpoints) else "."))
    else:
        text = "no checkpoint could be word-checked: add an ASR backend to find dropped and cut words."
    return Suggestion(latest, first, text + tail)
