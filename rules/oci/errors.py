"""Errors a user can fix: each message names the target or file and what to change."""


class ImageBuildError(Exception):
    """A problem in an image's declaration."""


class LayerBudgetExceeded(Exception):
    """An image chain needs more layers than an image may have."""
