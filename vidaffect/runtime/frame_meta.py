"""The typed contract of a frame's ``meta`` between stages, checked before a plugin sees it.

Every stage validates the ``meta`` of each frame it receives (:func:`check_meta`, called by
:func:`vidaffect.runtime.codec.decode`); a frame that fails is malformed: dropped and counted, never
handed to a plugin, so a sink never meets a face without a ``score`` or a box of NaN.

Known keys are typed; keys of third-party plugins pass unchecked (``extra="allow"``) at the
frame, face and emotion level. Numbers must be finite. Coordinates are pixels of the full
frame, xyxy, origin top-left (see :mod:`vidaffect.frames`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

Finite = Annotated[float, Field(allow_inf_nan=False, strict=False)]
Box = Annotated[list[Finite], Field(min_length=4, max_length=4)]
Point = Annotated[list[Finite], Field(min_length=2, max_length=2)]

MAX_FACES = 4096
"""Faces one frame may carry (MTCNN finds a few hundred in the densest crowd photos)."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class EmotionMeta(_Open):
    """A classifier's answer for one face: top-1 ``label`` and its ``score`` in [0, 1], and
    ``probs`` in the order of the frame's ``labels``."""

    label: StrictStr
    score: Annotated[Finite, Field(ge=0, le=1)]
    probs: list[Finite] | None = None


class FaceMeta(_Open):
    """One face: the detector's ``bbox`` (xyxy pixels) and ``score``, optional five
    ``landmarks``, the tracker's ``track_id``/``tracked`` and the classifiers' results."""

    bbox: Box
    score: Annotated[Finite, Field(ge=0, le=1)]
    landmarks: Annotated[list[Point], Field(min_length=5, max_length=5)] | None = None
    track_id: StrictInt | None = None
    tracked: StrictBool | None = None
    body_bbox: Box | None = None
    emotion: EmotionMeta | None = None
    smoothed: EmotionMeta | None = None


class ChangeMeta(_Open):
    """A track's smoothed label change (``to`` None: the track ended)."""

    track_id: StrictInt
    to: StrictStr | None
    score: Finite | None = None


class FrameMeta(_Open):
    """The ``meta`` of a frame message. ``source_incarnation`` is the start of the source
    process that numbered the frame (increasing in a run; see :class:`~.reorder.Reorderer`)."""

    faces: Annotated[list[FaceMeta], Field(max_length=MAX_FACES)] = []
    labels: list[StrictStr] | None = None
    tracks_ended: list[StrictInt] = []
    changes: list[ChangeMeta] = []
    fps: Annotated[Finite, Field(ge=0)] | None = None
    source: StrictStr | None = None
    detected: StrictBool | None = None
    image_file: StrictStr | None = None
    gap: dict[str, Any] | None = None
    source_incarnation: Annotated[StrictInt, Field(ge=0)] | None = None


class MetaError(ValueError):
    """A ``meta`` that breaks the contract; the message names the first bad field."""


def check_meta(meta: dict[str, Any]) -> None:
    """Validate a received frame's ``meta`` in place (nothing is converted).

    Raises:
        MetaError: a known key has the wrong type, a number is not finite, or a face lacks
            ``bbox``/``score``; the message gives the path, e.g. ``faces.0.score: Field
            required``.
    """
    try:
        FrameMeta.model_validate(meta)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise MetaError(f"meta › {where}: {err['msg']}") from None
