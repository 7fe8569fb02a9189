"""aether-rt: a real-time latent-space filter effect.

A small VAE decoder maps a 4-number latent vector z to 32 peaking biquad filters; an
LFO moves z; a Numba biquad bank filters a guitar or microphone signal in a GIL-free
audio callback, smoothing coefficients per sample. See README.md and docs/.
"""

__version__ = "0.1.0"
