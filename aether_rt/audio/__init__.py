"""Live audio: PortAudio devices, the GIL-free callback and the duplex stream."""
