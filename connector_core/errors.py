"""Exceptions that carry a message meant for the user, never a traceback."""


class CrmsyncError(Exception):
    """Base of errors reported to the user as plain text."""

    exit_code = 1


class SpecError(CrmsyncError):
    """The sync spec is invalid: one line per problem, each naming file, spec path and line."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class PluginError(CrmsyncError):
    """A plugin could not be loaded or registered something invalid."""

    exit_code = 2


class RunFailed(CrmsyncError):
    """The run could not complete (a sink failed, the error budget was exceeded, the API refused the key)."""


class UsageError(CrmsyncError):
    """The command was given something it cannot use (a missing file, a file of the wrong kind)."""

    exit_code = 2
