"""The base of faults a user can fix (damaged results, unreadable model files): stages print the
message, which names the file and what to do, and exit 2 without a traceback."""


class ExpectedError(RuntimeError):
    """An expected fault, said in one line with its remedy."""
