"""Training data: impulse responses from a folder, or a built-in synthetic corpus."""
