"""Library exceptions. The CLI translates them once, at its edge, into one stderr line
and an exit status; library code never prints or exits."""

from __future__ import annotations

from agkit.exit_codes import ExitCode


class AgkitError(Exception):
    """Base of every error agkit raises on purpose."""

    exit_code = ExitCode.ERROR


class UsageError(AgkitError):
    """Arguments that cannot work together or name something that does not exist."""

    exit_code = ExitCode.USAGE


class BadInputError(AgkitError):
    """A malformed or invalid input record (line number in the message)."""

    exit_code = ExitCode.BAD_INPUT


class InvalidRecord(AgkitError):
    """Raised by a stage for one record it cannot accept; the runner applies --on-error."""

    exit_code = ExitCode.BAD_INPUT


class VenueError(AgkitError):
    """The venue or a network peer failed."""

    exit_code = ExitCode.VENUE


class ConfigError(AgkitError):
    """Configuration, a policy file or credentials are missing or invalid."""

    exit_code = ExitCode.CONFIG
