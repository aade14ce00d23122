"""Errors a user can fix: each message names the target or file and what to change."""


class ImageBuildError(Exception):
    """A problem in an image's declaration."""


class StaleLockError(Exception):
    """The Debian lock does not match the manifest or an image's packages."""


class LayerBudgetExceeded(Exception):
    """An image chain needs more layers than an image may have."""


class PathPatternError(Exception):
    """A `[debian]` path filter glob that cannot match an image path."""
