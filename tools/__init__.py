"""Developer tools that run beside the package (an RTSP test server)."""
