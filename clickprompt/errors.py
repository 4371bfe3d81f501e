"""One exception type for bad input, whose message is a single line naming the file/field and problem.

The CLI prints `error: <message>` and exits with status 2 instead of a traceback.
"""


class ClickPromptError(Exception):
    """Base class: anything the user can fix (bad file, bad config, wrong checkpoint)."""


class DataError(ClickPromptError):
    """Raw or prepared data is missing, malformed or inconsistent."""

    def __init__(self, message: str, path=None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class CheckpointError(ClickPromptError):
    """A checkpoint does not fit the data or model it is loaded for."""
