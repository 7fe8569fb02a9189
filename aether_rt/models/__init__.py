"""The latent model: the decoder's bounded output mapping (and, later, the VAE)."""
