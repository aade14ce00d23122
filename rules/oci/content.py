"""Content sources: what an image adds over its parent before its own files.

oci owns the image model (layers in order, config, manifest, index) and knows no package
format. Everything that comes from a package source (Debian's archive today, RPM or PyPI
later) is asked for through one union, `ImageContentRequest`, which each source answers for
every image. A source passes what the images above need (installed packages, accounts, ...)
in its own `ContentState`, which oci carries from parent to child without reading it.

A source may also answer `ContentPrefetchRequest`: the work of an image that does not depend on
its parent's build (fetching, layers planned from a lock), started while the parent is still
building, so the layers of a whole chain are built side by side rather than one image after the
other. The answer carries nothing: `ImageContentRequest` asks for the same work again and the
engine hands over the result it memoized, or waits for the run in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Type, TypeVar

from pants.engine.addresses import Address
from pants.engine.environment import EnvironmentName
from pants.engine.unions import union

from oci.layer import Layer

S = TypeVar("S", bound="ContentState")


@dataclass(frozen=True)
class ContentState:
    """A source's record of an image, handed to the images built on it. Subclass per source."""


# A source runs Processes, which need the environment of the build that asks.
@union(in_scope_types=[EnvironmentName])
@dataclass(frozen=True)
class ImageContentRequest:
    """Asked of every content source for every image; a source with nothing to add answers empty."""

    # Sources whose layers go first have the lower order: system packages before language packages.
    order: ClassVar[int] = 0

    address: Address
    architecture: str
    parent_layers: int  # layers the parent chain already has, for the source's layer budget
    parent_states: tuple[ContentState, ...]  # every source's state of the parent image

    def parent_state(self, state_type: Type[S]) -> Optional[S]:
        return source_state(self.parent_states, state_type)


@dataclass(frozen=True)
class ImageContent:
    layers: tuple[Layer, ...]
    state: Optional[ContentState] = None  # None: nothing for the images built on this one


def source_state(states: tuple[ContentState, ...], state_type: Type[S]) -> Optional[S]:
    return next((s for s in states if isinstance(s, state_type)), None)


@union(in_scope_types=[EnvironmentName])
@dataclass(frozen=True)
class ContentPrefetchRequest:
    """Optional for a source: start what an image's content needs that its parent's build does not
    decide. Asked for images with a parent, at the time the parent is asked for."""

    address: Address
    architecture: str


@dataclass(frozen=True)
class ContentPrefetched:
    """The prefetch ran; what it built is found again through ImageContentRequest."""
