"""Built-in face detectors: MTCNN (facenet-pytorch) and OpenCV's Haar cascade."""
