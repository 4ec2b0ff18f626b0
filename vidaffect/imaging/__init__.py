"""Image helpers for plugins: decoding files under a pixel limit, drawing results on frames."""
