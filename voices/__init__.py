"""Synthesis: `voices/say-default` (StyleTTS2), `voices/say-strong` (F5-TTS), `voices/audition`."""
