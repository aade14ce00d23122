"""Errors of the Debian source a user can fix: each message names the target or file and what to change."""


class StaleLockError(Exception):
    """The Debian lock does not match the manifest or an image's packages."""


class PathPatternError(Exception):
    """A `[debian]` path filter glob that cannot match an image path."""
