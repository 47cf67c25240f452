"""Text -> the phoneme tokens the StyleTTS2 LibriTTS pretrain was trained on.

The recipe of the pretrain: espeak-ng's en-us phonemes with stress marks and punctuation kept, split into
words the way nltk's word tokenizer does, joined by single spaces, then each symbol mapped through the
178-symbol table of `styletts2.text_utils`, with the pad token 0 added at both ends.

espeak-ng comes from the `espeakng-loader` wheel (no root needed; verified under `qemu -cpu phenom` in
requirements/evidence). nltk's tokenizer class is used directly: `word_tokenize` would first need the
punkt data, which upstream downloads at import and which an offline machine does not have.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from envcheck.errors import TtsrigError

PAD = 0


LIST_LANGUAGES = "python -m trainers.phonemes --languages (or espeak-ng --voices)"


def _espeak():
    import espeakng_loader
    from phonemizer.backend import EspeakBackend
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
    return EspeakBackend


def languages() -> dict[str, str]:
    """{code: name} of the languages the bundled espeak-ng phonemises."""
    return dict(_espeak().supported_languages())


def check_language(language: object, where: str = "--language") -> str:
    """The language if espeak-ng phonemises it, else one line naming it and how to list the supported ones."""
    if not isinstance(language, str) or not language.strip():
        raise TtsrigError(f"{where} {language!r} is not a language code: use an espeak-ng language such as en-us "
                          f"(the pretrain's); {LIST_LANGUAGES} lists them")
    if language not in languages():
        raise TtsrigError(f"{where} {language!r} is not a language espeak-ng phonemises: use one of its codes, such "
                          f"as en-us (the pretrain's) or en-gb; {LIST_LANGUAGES} lists them")
    return language


@functools.lru_cache(maxsize=1)
def _backend(language: str):
    check_language(language, "language")
    return _espeak()(language, preserve_punctuation=True, with_stress=True, language_switch="remove-flags")


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, int]:
    from styletts2.text_utils import dicts

    return dict(dicts)


def phonemize(texts: list[str], language: str = "en-us") -> list[str]:
    """Phoneme strings, words separated by single spaces (punctuation as its own word, as upstream)."""
    from nltk.tokenize.destructive import NLTKWordTokenizer

    words = NLTKWordTokenizer()
    raw = _backend(language).phonemize([t.strip() for t in texts], strip=True, njobs=1)
    out = []
    for text in raw:
        joined = " ".join(words.tokenize(text))
        out.append(joined.replace("``", '"').replace("''", '"'))
    return out


@dataclass
class Tokens:
    ids: list[int]
    unknown: list[str]  # symbols outside the table, in order of first appearance


def tokenize(phonemes: str) -> Tokens:
    table = _table()
    ids, unknown = [PAD], []
    for symbol in phonemes:
        if symbol in table:
            ids.append(table[symbol])
        elif symbol not in unknown:
            unknown.append(symbol)
    ids.append(PAD)
    return Tokens(ids, unknown)


def encode(texts: list[str], language: str = "en-us") -> list[tuple[str, Tokens]]:
    """(phonemes, tokens) per text; raises when a text phonemises to nothing."""
    result = []
    for text, phon in zip(texts, phonemize(texts, language)):
        if not phon.strip():
            raise TtsrigError(f"{text!r} phonemises to nothing (espeak-ng {language}): is it in another language "
                              "or only symbols?")
        result.append((phon, tokenize(phon)))
    return result


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--languages"]:
        sys.exit("usage: python -m trainers.phonemes --languages   (lists the espeak-ng languages --language takes)")
    for code, name in sorted(languages().items()):
        print(f"{code}\t{name}")
