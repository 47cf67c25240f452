"""The listening loop's marker passage, what each of its words probes, and what a verdict means for training.

The passage is ttsrig's own. Each marker is an accent feature a fine-tune moves (or fails to move), probed
by several words so one lucky word does not decide.
"""
from __future__ import annotations

PASSAGE = (
    "After a long day, Clare and her brother walked home along the path by the river. "
    "The grass was cut, and the last of the light was fading fast. "
    "\"Put your foot on the rock and pull,\" she said, \"but mind the mud: it's a bit of a struggle.\" "
    "They laughed at their bad luck, found a good book in the car, and drove through the quiet city. "
    "Far away the night was calm; here and there a voice rang out, and more of our neighbours came round "
    "to say it was a happy, pretty evening."
)

MARKERS = [
    {"id": "bath", "name": "BATH", "words": ["after", "path", "grass", "last", "fast", "laughed"],
     "listen": "the vowel of these words against TRAP (bad, calm's neighbour 'and'): long and back [ɑː] in "
               "southern British speech, short [æ] like 'bad' in northern English and most American speech"},
    {"id": "foot-strut", "name": "FOOT-STRUT", "words": ["put", "foot", "pull", "good", "book", "cut", "mud",
                                                        "struggle", "luck", "brother", "but"],
     "listen": "whether 'cut, mud, luck, brother, but' keep the FOOT vowel [ʊ] of 'put, foot, good' (northern "
               "English) or open to [ʌ] (southern British, American)"},
    {"id": "diphthongs", "name": "Diphthongs (PRICE, MOUTH, FACE, GOAT, CHOICE)",
     "words": ["night", "quiet", "found", "round", "out", "day", "say", "came", "home", "drove", "voice"],
     "listen": "the start and glide of each: PRICE [aɪ] vs [ɑɪ] or [ɔɪ], MOUTH [aʊ] vs [æʊ] or [ɛʊ], FACE and "
               "GOAT as glides or steady [eː] [oː], CHOICE [ɔɪ]"},
    {"id": "happy", "name": "happY", "words": ["happy", "pretty", "city"],
     "listen": "the final vowel: tense [i] like 'see' (most modern accents) or lax [ɪ] (older RP, some northern)"},
    {"id": "linking-r", "name": "Linking and coda R", "words": ["far away", "here and", "more of our",
                                                                "after a", "river", "car", "Clare"],
     "listen": "non-rhotic accents drop the r of 'car, river' but sound it before a vowel ('far_away', "
               "'here_and', 'more_of'); rhotic accents sound every r; a missing linking r or an r where "
               "the model should have none both show how far the fine-tune moved"},
]

VERDICTS = {
    "": "not judged",
    "right": "right: the feature is as the target speaker says it",
    "weak": "too weak: still the pretrain's accent",
    "over": "overdone: caricature, or the feature spills onto other words",
    "garbled": "garbled: wrong sounds, swallowed or truncated words",
}

# What to do next, in ttsrig's words. Listened for per checkpoint, read across epochs.
GUIDANCE = [
    ("Most markers 'too weak', and later epochs no better",
     "The run is still close to the pretrain. Train more epochs; with F5, check that the learning rate was not "
     "decayed to nothing (trainers.f5 keeps it constant unless --decay); give it more minutes of the target speaker."),
    ("Markers 'too weak' early, 'right' from some epoch on",
     "Pick the first epoch that is right and still clean: later ones only add the risk of over-fitting."),
    ("Markers right, but words 'garbled' or cut off",
     "Over-fitting or too high a learning rate: choose an earlier epoch, lower --lr, or add recordings. With "
     "F5, a longer reference clip with an exact transcript often cures truncation; say-default (StyleTTS2) "
     "renders every phoneme when F5 will not."),
    ("A marker 'overdone'",
     "An earlier epoch, or for F5 a lower cfg_strength (2.0 -> 1.5); for StyleTTS2 a lower alpha/beta keeps "
     "more of the reference clip's own style."),
    ("One marker wrong in every epoch while the others are right",
     "The data lacks it: record sentences full of those words (the marker table lists them) and check their "
     "transcripts; then fine-tune again from the best checkpoint."),
    ("Good at epoch N, worse at N+1, good again at N+2",
     "Noise between epochs: judge with the same seed (audition does) and prefer the run of good epochs over a "
     "single good one."),
]
