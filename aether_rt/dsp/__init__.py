"""DSP core: peaking biquad design and response (NumPy/JAX), and the real-time bank."""
