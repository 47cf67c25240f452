"""ttsrig's CPU probe and environment verifier.

`python -m envcheck probe` says which x86-64 tier this CPU belongs to and why.
"""
