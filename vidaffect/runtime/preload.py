"""Modules every stage process needs, imported once in the fork server that starts them."""

import cv2  # noqa: F401
import msgpack  # noqa: F401
import numpy  # noqa: F401
import pydantic  # noqa: F401
import zmq  # noqa: F401

import vidaffect.plugins  # noqa: F401
import vidaffect.runtime.stage  # noqa: F401

try:  # the models' libraries: the heaviest imports of the detector and classifier stages
    import facenet_pytorch.models.mtcnn  # noqa: F401
    import torch  # noqa: F401
except ImportError:
    pass

import gc  # noqa: E402

# The preloaded objects live as long as the server: move them out of the collector's reach,
# so that a stage's collections neither scan them nor touch (and so copy) their pages.
gc.freeze()
