"""Errors of the Debian source a user can fix: each message names the target or file and what to change."""


class StaleLockError(Exception):
    """The Debian lock does not match the manifest or an image's packages."""


class PathPatternError(Exception):
    """A `[debian]` path filter glob that cannot match an image path."""


class DebFetchError(Exception):
    """A locked .deb that no source in `[debian].fetch_order` has: package, version, URLs tried and the fix."""


class FetchOptionError(Exception):
    """A `[debian]` fetch option that names no known source."""
