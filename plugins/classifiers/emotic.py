"""Context emotion classifier for EMOTIC models trained with ``vidaffect train --task emotic``.

For each face the model sees the person's body and the whole frame (Kosti et al., "Context
Based Emotion Recognition using EMOTIC Dataset", TPAMI 2019) and gives 26 category
probabilities (multilabel, independent sigmoids) plus valence, arousal and dominance (1-10).

The body box comes from the face box (``body: expand``, the default): ``body_width`` face
widths wide, centred on the face, from ``body_above`` face heights above the face down to
``body_height`` face heights below its top, clipped to the frame. A head is about an eighth
of an adult's height, so the default 6 face heights reach the hips or thighs: the upper-body
framing most EMOTIC boxes have. ``body: hog`` looks for the person with OpenCV's HOG people
detector (Dalal & Triggs, CVPR 2005) and takes the detection whose upper third holds the face
centre, falling back to the expansion; it needs a standing person of at least 64x128 pixels
(frames smaller than that always use the expansion) and costs about 0.3 s per 640x480 frame
on one core, so it suits low frame rates.

A face whose box has no area inside the frame (a tracked box that left it) gets ``emotion``
None and no ``body_bbox``.

The context is the whole frame resized to the checkpoint's context size; it is encoded once
per frame and shared by that frame's faces. Each face gets ``emotion`` with ``label``/
``score`` (the most likely category), ``probs`` (26), ``categories`` (the categories above
their threshold, chosen on validation data at training time, most likely first, at most
``top_k``) and ``vad`` (``{"valence", "arousal", "dominance"}``), and ``body_bbox`` (xyxy
pixels).

There is no shipped EMOTIC checkpoint (EMOTIC's images are distributed only by its authors),
so ``checkpoint`` must name a file trained with ``vidaffect train --task emotic``; the
classifier refuses to start otherwise, never running on random weights.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

import vidaffect
from vidaffect.api import Classifier, PluginConfig
from vidaffect.errors import CheckpointError
from vidaffect.frames import Face, Frame
from vidaffect.models.device import DeviceOption, check_device, resolve_device
from vidaffect.models.emotic_labels import CATEGORIES, VAD, check_emotic_meta
from vidaffect.models.meta import CheckpointMeta, read_meta
from vidaffect_plugins.classifiers.crops import check_finite, to_model_input

HOW_TO_TRAIN = (
    "train one on EMOTIC with `vidaffect train --task emotic --train TRAIN.csv --val VAL.csv "
    "--images EMOTIC_DIR --out runs/emotic` (see the README, 'EMOTIC context model')"
)


def check_emotic_checkpoint(path: str) -> CheckpointMeta:
    """The metadata of an EMOTIC checkpoint file (read without torch).

    Raises:
        CheckpointError: missing or unreadable file, or not an EMOTIC body + context model;
            the message says how to train one.
    """
    try:
        return check_emotic_meta(read_meta(path), path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; {HOW_TO_TRAIN}") from None


def expand_face_box(
    bbox: list[float], frame_size: tuple[int, int], width: float, above: float, height: float
) -> list[float]:
    """The body box guessed from a face box (see the module docstring).

    Args:
        bbox: face [x1, y1, x2, y2] pixels.
        frame_size: (width, height) of the frame in pixels.

    Returns:
        [x1, y1, x2, y2] pixels, clipped to the frame.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    fw, fh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx = (x1 + x2) / 2
    w, h = frame_size
    return [
        max(0.0, cx - width * fw / 2),
        max(0.0, y1 - above * fh),
        min(float(w), cx + width * fw / 2),
        min(float(h), y1 + height * fh),
    ]


def hog_person_for(face: list[float], people: np.ndarray) -> list[float] | None:
    """The person box (xywh rows of ``people``) whose upper third holds the face centre, the
    smallest such box when several do; None when none does."""
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    best = None
    for x, y, w, h in people:
        if x <= cx <= x + w and y <= cy <= y + h / 3 and (best is None or w * h < best[2] * best[3]):
            best = (x, y, w, h)
    if best is None:
        return None
    x, y, w, h = (float(v) for v in best)
    return [x, y, x + w, y + h]


class EmoticClassifier(Classifier):
    """Per-face EMOTIC categories and valence/arousal/dominance from body and scene."""

    name = "emotic"
    summary = "EMOTIC context model: 26 categories + valence/arousal/dominance (needs a trained checkpoint)"
    preload = ("torch", "torchvision")

    class Config(DeviceOption):
        checkpoint: str = Field(description="EMOTIC .safetensors checkpoint (vidaffect train --task emotic)")
        body: Literal["expand", "hog"] = Field(
            "expand", description="body box: expand the face box, or HOG people detector"
        )
        body_width: float = Field(3.0, gt=0, description="expand: body width in face widths")
        body_above: float = Field(0.3, ge=0, description="expand: face heights above the face top")
        body_height: float = Field(6.0, gt=0, description="expand: face heights below the face top")
        top_k: int = Field(3, ge=1, le=26, description="most categories published per face")
        max_batch: int = Field(32, ge=1, description="persons per forward pass")

        @field_validator("checkpoint")
        @classmethod
        def _checkpoint_is_emotic(cls, v: str) -> str:
            try:
                check_emotic_checkpoint(v)
            except CheckpointError as exc:
                raise ValueError(str(exc)) from None
            return v

    config: Config

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """A GPU asked for (``device``) is there, before any stage starts.

        Raises:
            PluginError: PyTorch sees no such GPU.
        """
        check_device(config, "emotic classifier")

    def open(self) -> None:
        import torch

        from vidaffect.models.emotic_checkpoint import load_emotic_checkpoint

        self.device = resolve_device(self.config.device, "emotic classifier")
        model, self.meta = load_emotic_checkpoint(self.config.checkpoint)
        self.model = model.to(self.device).to(memory_format=torch.channels_last)
        self.thresholds = np.asarray(self.meta.thresholds or [0.5] * len(CATEGORIES), np.float32)
        self.hog: cv2.HOGDescriptor | None = None
        if self.config.body == "hog":
            self.hog = cv2.HOGDescriptor()
            # cv2's stubs lack this function (HOGDescriptor.getDefaultPeopleDetector, typed as a
            # Sequence[float] that setSVMDetector does not take; both return an ndarray)
            self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]
            self.hog_window = tuple(self.hog.winSize)  # (w, h): smaller frames crash OpenCV
        warm = Frame(stream="warmup", seq=0, image=np.zeros((96, 96, 3), np.uint8), ts_ns=0)
        warm.meta["faces"] = [{"bbox": [30.0, 10.0, 60.0, 40.0], "score": 1.0}]
        self.classify([warm])  # the first call sets up kernels

    def _body_boxes(self, frame: Frame, faces: list[Face]) -> list[list[float]]:
        h, w = frame.image.shape[:2]
        c = self.config
        people = np.zeros((0, 4))
        if self.hog is not None and w >= self.hog_window[0] and h >= self.hog_window[1]:
            found, _ = self.hog.detectMultiScale(frame.image, winStride=(8, 8), padding=(8, 8), scale=1.05)
            people = np.asarray(found).reshape(-1, 4)
        boxes = []
        for face in faces:
            box = hog_person_for(face["bbox"], people) if len(people) else None
            boxes.append(
                box or expand_face_box(face["bbox"], (w, h), c.body_width, c.body_above, c.body_height)
            )
        return boxes

    def _crop(self, image: np.ndarray, box: list[float]) -> np.ndarray:
        h, w = image.shape[:2]
        x1, y1 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
        x2, y2 = int(np.clip(np.ceil(box[2]), x1 + 1, w)), int(np.clip(np.ceil(box[3]), y1 + 1, h))
        return image[y1:y2, x1:x2]

    def classify(self, frames: list[Frame]) -> None:
        import torch

        m = self.meta
        assert m.context_size is not None
        for frame in frames:
            frame.meta["labels"] = list(CATEGORIES)
        work = [(frame, faces) for frame in frames if (faces := self._visible_faces(frame))]
        if not work:
            return
        contexts = to_model_input([f.image for f, _ in work], m.context_size, 3, m.mean, m.std)
        with torch.inference_mode():
            ctx = self.model.encode_context(
                torch.from_numpy(contexts).to(self.device).contiguous(memory_format=torch.channels_last)
            )
            for k, (frame, faces) in enumerate(work):
                boxes = self._body_boxes(frame, faces)
                crops = [self._crop(frame.image, b) for b in boxes]
                for i in range(0, len(crops), self.config.max_batch):
                    part = crops[i : i + self.config.max_batch]
                    body = torch.from_numpy(to_model_input(part, m.input_size, 3, m.mean, m.std)).to(
                        self.device
                    )
                    logits, vad = self.model.heads(
                        body.contiguous(memory_format=torch.channels_last),
                        ctx[k : k + 1].expand(len(part), -1),
                    )
                    probs = check_finite(torch.sigmoid(logits).float().cpu().numpy(), self.config.checkpoint)
                    vads = check_finite(vad.float().cpu().numpy(), self.config.checkpoint)
                    for face, box, p, v in zip(faces[i:], boxes[i:], probs, vads):
                        self._publish(face, box, p, v)

    @staticmethod
    def _visible_faces(frame: Frame) -> list[Face]:
        """The faces with some area inside the frame; the others (a tracked box that left it)
        get ``emotion`` None and no ``body_bbox``."""
        h, w = frame.image.shape[:2]
        visible = []
        for face in frame.faces:
            x1, y1, x2, y2 = (float(v) for v in face["bbox"])
            if min(x2, w) - max(x1, 0) >= 1 and min(y2, h) - max(y1, 0) >= 1:
                visible.append(face)
            else:
                face["emotion"] = None
                face.pop("body_bbox", None)
        return visible

    def _publish(self, face: Face, box: list[float], p: np.ndarray, v: np.ndarray) -> None:
        order = np.argsort(-p)
        present = [int(j) for j in order if p[j] >= self.thresholds[j]][: self.config.top_k]
        face["body_bbox"] = [round(float(x), 2) for x in box]
        face["emotion"] = {
            "label": CATEGORIES[int(order[0])],
            "score": round(float(p[order[0]]), 4),
            "probs": [round(float(x), 4) for x in p],
            "categories": [CATEGORIES[j] for j in present],
            "vad": {k: round(float(x), 3) for k, x in zip(VAD, v)},
        }


@vidaffect.hookimpl
def register_classifiers(register: vidaffect.Register) -> None:
    register(EmoticClassifier)
