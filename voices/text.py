"""Text in, sentences out, and the join of their audio: what both voices share."""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import numpy as np

from envcheck import reading
from envcheck.errors import TtsrigError

SENTENCE_END = re.compile(r"(?<=[.!?…;:])\s+|\n\s*\n")


def read_text(words: list[str], file: str | None) -> str:
    """From the command line, --file, or standard input (in that order of preference)."""
    if words:
        text = " ".join(words)
    elif file:
        text = reading.read_text(Path(file).expanduser(), "--file", "name a UTF-8 text file, or give the text as "
                                 "arguments", streams=True)
    elif not sys.stdin.isatty():
        text = read_stdin()
    else:
        raise TtsrigError("no text: give it as arguments, with --file FILE, or on standard input")
    text = " ".join(text.split())
    if not text:
        raise TtsrigError("the text is empty")
    return text


def read_stdin(limit: int = reading.SETTINGS_LIMIT) -> str:
    """Standard input, bounded as --file is (`< /dev/zero` would fill memory), decoded as sys.stdin decodes
    (its encoding and error handler: say.read_text names bytes that are not UTF-8)."""
    stream = getattr(sys.stdin, "buffer", None)
    encoding, errors = sys.stdin.encoding or "utf-8", sys.stdin.errors or "strict"
    if stream is None:  # a text stream stands in for standard input (an embedding program, a test)
        stream = io.BytesIO(sys.stdin.read(limit + 1).encode("utf-8", "surrogateescape"))
        encoding, errors = "utf-8", "surrogateescape"
    data = reading.read_stream(stream, "standard input", "split the text and say each part on its own",
                               limit=limit)
    return data.decode(encoding, errors)


def sentences(text: str, max_chars: int = 300) -> list[str]:
    """Split at sentence ends; a sentence longer than max_chars is split again at commas, then spaces."""
    out: list[str] = []
    for sentence in (s.strip() for s in SENTENCE_END.split(text)):
        while len(sentence) > max_chars:
            cut = max(sentence.rfind(", ", 0, max_chars), sentence.rfind(" ", 0, max_chars))
            cut = cut if cut > 0 else max_chars
            out.append(sentence[:cut + 1].strip())
            sentence = sentence[cut + 1:].strip()
        if sentence:
            out.append(sentence)
    return out


def join(pieces: list[np.ndarray], rate: int = 24_000, fade_s: float = 0.05, gap_s: float = 0.1) -> np.ndarray:
    """Sentences joined by a short pause: each seam cross-fades the end of one sentence into the pause
    and the pause into the next sentence (quarter-sine ramps), so no seam clicks."""
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    fade, gap = int(fade_s * rate), np.zeros(int(gap_s * rate), dtype=np.float32)
    out = pieces[0].astype(np.float32)
    for piece in pieces[1:]:
        piece = piece.astype(np.float32).copy()
        n_in = min(fade, len(piece))
        piece[:n_in] *= np.sin(np.linspace(0, np.pi / 2, n_in, dtype=np.float32))
        nxt = np.concatenate([gap, piece])
        n = min(fade, len(out), len(nxt))
        ramp = np.linspace(0, np.pi / 2, n, dtype=np.float32)
        seam = out[len(out) - n:] * np.cos(ramp) + nxt[:n] * np.sin(ramp)
        out = np.concatenate([out[:len(out) - n], seam, nxt[n:]])
    return out
