"""One error type for everything a user can hit: its text is the message shown."""


class TtsrigError(Exception):
    """A failure with a message that names the cause and the next step.

    Command-line entry points catch it once, print it without a traceback and
    exit with status 2.
    """
