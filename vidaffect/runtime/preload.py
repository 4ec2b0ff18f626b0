"""The fork server's last preload module: what every stage process needs, then a freeze.

The server imports the pipeline's plugins' heavy modules first (their ``preload``: torch,
MTCNN's library), then this module, whose last step moves every object imported so far out
of the garbage collector's reach, so that a stage's collections neither scan them nor touch
(and so copy) their pages: without it the first frames of a forked stage were twice as slow.
"""

import gc

import cv2  # noqa: F401
import msgpack  # noqa: F401
import numpy  # noqa: F401
import pydantic  # noqa: F401
import zmq  # noqa: F401

import vidaffect.plugin_manager  # noqa: F401
import vidaffect.runtime.stage  # noqa: F401

gc.freeze()
