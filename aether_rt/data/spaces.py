"""Acoustic spaces and reverberators: rooms, halls, outdoors, booths, plates, springs.

* :func:`shoebox_room`: the image-source method (pyroomacoustics), 3 to 25 m, each
  surface a material from its absorption database, air absorption.
* :func:`stochastic_room`: sparse early reflections and a noise tail whose octave-band
  levels and decay times vary smoothly with frequency.
* :func:`hall`: a concert hall. RT60 1.6-3.5 s at mid frequencies, bass ratio
  (RT 125-250 Hz over RT 500 Hz-1 kHz) 1.0-1.4 and air absorption shortening the top
  (Beranek, "Concert Halls and Opera Houses", 2004), a pre-delay of 10-50 ms.
* :func:`outdoor`: a street or a field: the direct sound, a ground reflection (a comb),
  a few discrete echoes from buildings low-passed by distance, a faint diffuse tail.
* :func:`booth`: a vocal booth, a closet, a car: RT60 0.05-0.35 s, dense early
  reflections, foam (dark) or hard (bright) surfaces.
* :func:`plate`: a steel plate reverb (EMT 140 type): no early reflections, echo
  density at once, decay nearly the same at all frequencies (1.5-5 s), thin below
  ~150 Hz, bright up to 8-12 kHz.
* :func:`spring`: a spring tank: band-limited by its transducers and the springs'
  dispersion (about 100 Hz to 4-5 kHz), resonant, with round-trip echoes.
"""

from __future__ import annotations

import numpy as np
import scipy.signal as ss

from aether_rt.data.filters import (
    FS,
    OCTAVE_CENTRES_HZ,
    butter,
    chain,
    comb,
    decaying_noise,
    highpass,
    log_uniform,
    lowpass,
    peaks,
    shelf,
)

# Scale of every cabinet/speaker/microphone gain in the legacy room colourations
# (:func:`colour`). Device responses multiply IR colouration by many independent peaks
# and shelves; at full scale the room families need ~16 PCA components for 0.5 dB.
COLOUR_STRENGTH = 0.5

_WALLS = (
    "hard_surface", "brickwork", "rough_concrete", "smooth_brickwork_flush_pointing", "brick_wall_rough",
    "ceramic_tiles", "limestone_wall", "reverb_chamber", "plasterboard", "wooden_lining", "wood_1.6cm",
    "plywood_thin", "glass_3mm", "glass_window", "curtains_cotton_0.5", "curtains_velvet", "studio_curtains",
    "panel_fabric_covered_6pcf", "panel_fabric_covered_8pcf", "rockwool_50mm_80kgm3", "mineral_wool_50mm_40kgm3",
)  # fmt: skip
_FLOORS = (
    "concrete_floor", "marble_floor", "linoleum_on_concrete", "carpet_cotton", "carpet_tufted_9.5mm",
    "carpet_thin", "carpet_6mm_closed_cell_foam", "stage_floor", "wooden_floor",
)  # fmt: skip
_CEILINGS = (
    "hard_surface", "plasterboard", "ceiling_plasterboard", "ceiling_fissured_tile", "ceiling_perforated_gypsum_board",
    "ceiling_melamine_foam", "ceiling_metal_panel", "wooden_lining", "rough_concrete",
)  # fmt: skip

_U = (np.arange(9) - 4.0) / 4.0  # octave bands 62.5 Hz .. 16 kHz on [-1, 1]


def shoebox_room(rng: np.random.Generator) -> np.ndarray:
    """A shoebox room by the image-source method, half of them through a microphone model."""
    import pyroomacoustics as pra

    length = rng.uniform(3.0, 25.0)
    dims = np.array([length, rng.uniform(2.5, max(3.0, 0.9 * length)), rng.uniform(2.3, 8.0)])
    known = pra.materials_absorption_table
    pick = lambda names: str(rng.choice([n for n in names if n in known]))  # noqa: E731
    materials = pra.make_materials(
        ceiling=pick(_CEILINGS), floor=pick(_FLOORS),
        east=pick(_WALLS), west=pick(_WALLS), north=pick(_WALLS), south=pick(_WALLS),
    )  # fmt: skip
    room = pra.ShoeBox(dims, fs=int(FS), materials=materials, max_order=int(rng.integers(6, 12)), air_absorption=True)
    margin = 0.4
    src = rng.uniform(margin, dims - margin)
    mic = rng.uniform(margin, dims - margin)
    while np.linalg.norm(mic - src) < 0.5:
        mic = rng.uniform(margin, dims - margin)
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    ir = np.asarray(room.rir[0][0], dtype=np.float64)
    return colour(ir, rng, mic=rng.random() < 0.5, cab=False, speaker=False)


def _early_reflections(rng: np.random.Generator, length: int, count: int, span_s: float) -> np.ndarray:
    """The direct sound and ``count`` delayed, attenuated, wall-low-passed copies."""
    ir = np.zeros(length)
    ir[0] = 1.0
    n = np.arange(_REFLECTION_TAPS)
    for _ in range(count):
        delay = int(rng.uniform(0.001, span_s) * FS)
        amp = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.8) * np.exp(-delay / FS / 0.05)
        pole = rng.uniform(0.0, 0.8)  # the wall's one-pole low-pass, (1 - p) p^n
        taps = ir[delay : delay + _REFLECTION_TAPS]
        taps += amp * (1.0 - pole) * pole ** n[: taps.size]
    return ir


# The one-pole wall filter's response is below 1e-6 of its first tap after 64 taps (p <= 0.8).
_REFLECTION_TAPS = 64


def stochastic_room(rng: np.random.Generator) -> np.ndarray:
    """Early reflections and a smooth-spectrum diffuse tail, coloured by random devices."""
    rt60_s = rng.uniform(0.15, 2.5)
    length = int(min(2.0, 1.2 * rt60_s + 0.1) * FS)
    ir = _early_reflections(rng, length, int(rng.integers(3, 20)), 0.06)
    # Level and decay vary smoothly with frequency (a tilt and a curvature in log
    # frequency), as absorption spectra do; independent random bands would be neither
    # real nor learnable.
    tilt_db, curve_db = rng.uniform(-4.0, 4.0), rng.uniform(-3.0, 3.0)
    rts = rt60_s * rng.uniform(0.4, 1.0) ** (np.arange(9) / 8.0)
    tail = decaying_noise(rng, length, rts, tilt_db * _U + curve_db * (_U * _U - 1.0 / 3.0),
                          onset_s=rng.uniform(0.005, 0.05))  # fmt: skip
    ir += tail * rng.uniform(0.05, 0.6) / (np.std(tail[: int(0.05 * FS)]) + 1e-12)
    return colour(ir, rng, mic=rng.random() < 0.5, cab=rng.random() < 0.3, speaker=rng.random() < 0.4)


def hall(rng: np.random.Generator) -> np.ndarray:
    """A concert hall or church: long, bass-rich decay, air absorption at the top."""
    rt_mid = rng.uniform(1.6, 3.5)
    bass_ratio = rng.uniform(1.0, 1.4)
    # RT per octave: the bass ratio below 500 Hz, air absorption above 2 kHz.
    rt = rt_mid * np.interp(np.log2(OCTAVE_CENTRES_HZ), np.log2([62.5, 250.0, 500.0, 2000.0, 16000.0]),
                            [bass_ratio * rng.uniform(0.9, 1.1), bass_ratio, 1.0, rng.uniform(0.8, 1.0),
                             rng.uniform(0.15, 0.4)])  # fmt: skip
    length = int(2.0 * FS)
    predelay_s = rng.uniform(0.01, 0.05)
    ir = _early_reflections(rng, length, int(rng.integers(6, 25)), predelay_s + 0.08)
    tail = decaying_noise(rng, length, rt, rng.uniform(-2, 2) * _U, onset_s=predelay_s, fade_in_s=0.06)
    ir += tail * rng.uniform(0.3, 1.5) / (np.std(tail[: int(0.1 * FS)]) + 1e-12)
    return chain(ir, [shelf("high", rng.uniform(4000, 9000), -rng.uniform(0, 6))])


def outdoor(rng: np.random.Generator) -> np.ndarray:
    """A street or a field: direct sound, a ground reflection, building echoes, a faint tail."""
    length = int(1.2 * FS)
    ir = np.zeros(length)
    ir[0] = 1.0
    ir = comb(ir, rng.uniform(0.0003, 0.006), rng.uniform(0.4, 0.9), lowpass_hz=rng.uniform(2000, 10000))
    for _ in range(int(rng.integers(1, 8))):  # building facades 5-60 m away
        delay_s = rng.uniform(0.02, 0.35)
        tap = np.zeros(length)
        tap[int(delay_s * FS)] = rng.uniform(0.05, 0.5)
        # air absorption: farther echoes lose more top (roughly 1 dB per 10 m at 8 kHz)
        ir += ss.sosfilt(butter(1, 20000.0 / (1.0 + 8.0 * delay_s), "lowpass"), tap)
    rt = rng.uniform(0.4, 1.5) * rng.uniform(0.3, 0.8) ** (np.arange(9) / 8.0)
    tail = decaying_noise(rng, length, rt, rng.uniform(-6, 0) * _U, onset_s=0.02, fade_in_s=0.1)
    ir += tail * rng.uniform(0.005, 0.05) / (np.std(tail[: int(0.1 * FS)]) + 1e-12)
    return chain(ir, [highpass(rng.uniform(20, 80), 0.7)])


def booth(rng: np.random.Generator) -> np.ndarray:
    """A small booth, closet or car: short decay, strong early reflections."""
    length = int(0.5 * FS)
    rt60_s = rng.uniform(0.05, 0.35)
    ir = _early_reflections(rng, length, int(rng.integers(4, 16)), 0.012)
    hard = rng.random() < 0.4
    tilt = rng.uniform(-2, 3) if hard else rng.uniform(-10, -3)  # foam absorbs the top
    rt = rt60_s * (rng.uniform(0.7, 1.1) if hard else rng.uniform(0.3, 0.6)) ** (np.arange(9) / 8.0)
    tail = decaying_noise(rng, length, rt, tilt * _U, onset_s=0.002, fade_in_s=0.005)
    ir += tail * rng.uniform(0.1, 0.6) / (np.std(tail[: int(0.02 * FS)]) + 1e-12)
    return chain(ir, [peaks([rng.uniform(80, 250)], [rng.uniform(1, 4)], [rng.uniform(-3, 8)])])  # a box mode


def plate(rng: np.random.Generator) -> np.ndarray:
    """A plate reverb: dense at once, nearly frequency-independent decay, thin bass, bright."""
    length = int(2.0 * FS)
    rt = rng.uniform(1.5, 5.0) * rng.uniform(0.6, 0.95) ** (np.arange(9) / 8.0)
    tail = decaying_noise(rng, length, rt, rng.uniform(0, 4) * _U, onset_s=rng.uniform(0.0, 0.01), fade_in_s=0.002)
    return chain(tail, [highpass(rng.uniform(100, 220), rng.uniform(0.6, 1.0)),
                        lowpass(rng.uniform(8000, 13000), rng.uniform(0.6, 1.0))])  # fmt: skip


def spring(rng: np.random.Generator) -> np.ndarray:
    """A spring tank: a band-limited, resonant tail with round-trip echoes."""
    length = int(2.0 * FS)
    rt = rng.uniform(1.5, 3.5) * rng.uniform(0.5, 0.9) ** (np.arange(9) / 8.0)
    tail = decaying_noise(rng, length, rt, np.zeros(9), fade_in_s=0.005)
    for _ in range(int(rng.integers(1, 3))):  # round trips along the springs (25-60 ms)
        tail = comb(tail, rng.uniform(0.025, 0.06), rng.uniform(0.3, 0.7))
    n = int(rng.integers(2, 5))
    top_hz = rng.uniform(3500, 5500)  # the springs' dispersion cut-off
    resonances = peaks(log_uniform(rng, 300, 3500, n), rng.uniform(1, 6, n), rng.uniform(-4, 10, n))
    return chain(tail, [butter(2, rng.uniform(80, 250), "highpass"), lowpass(top_hz, rng.uniform(0.8, 2.0)),
                        lowpass(top_hz * 1.2, 0.7), resonances])  # fmt: skip


def colour(ir: np.ndarray, rng: np.random.Generator, *, mic: bool, cab: bool, speaker: bool) -> np.ndarray:
    """Pass a room IR through random cabinet, speaker and microphone models at ``COLOUR_STRENGTH``."""
    sos: list[np.ndarray] = []
    k = COLOUR_STRENGTH

    def add_peaks(freq_hz: list[float], q: list[float], gain_db: list[float]) -> None:
        sos.append(peaks(np.array(freq_hz), np.array(q), k * np.array(gain_db)))

    def add_shelf(kind: str, freq_hz: float, gain_db: float) -> None:
        sos.append(shelf(kind, freq_hz, k * gain_db))

    if cab:  # a closed guitar cabinet: tight low end, resonance, presence, steep top, breakup notches
        add_shelf("low", rng.uniform(70, 130), rng.uniform(-18, -8))
        for _ in range(2):
            add_shelf("high", rng.uniform(3500, 8000), rng.uniform(-12, -6))
        add_peaks(
            [rng.uniform(80, 160), rng.uniform(1500, 4000), rng.uniform(2000, 6000), rng.uniform(700, 1500)],
            [rng.uniform(1, 3), rng.uniform(0.7, 2), rng.uniform(4, 12), rng.uniform(1, 4)],
            [rng.uniform(2, 8), rng.uniform(2, 7), rng.uniform(-12, -4), rng.uniform(-6, 3)],
        )
    if speaker:  # a full-range speaker: band limits and ripple
        add_shelf("low", rng.uniform(50, 200), rng.uniform(-15, -5))
        add_shelf("high", rng.uniform(9000, 18000), rng.uniform(-12, -3))
        n = int(rng.integers(2, 6))
        add_peaks(list(np.exp(rng.uniform(np.log(200), np.log(12000), n))), list(rng.uniform(1, 5, n)),
                  list(rng.uniform(-4, 4, n)))  # fmt: skip
    if mic:  # a microphone: proximity bass, presence peak, top roll-off
        add_peaks([rng.uniform(80, 250), rng.uniform(3000, 8000)], [rng.uniform(0.5, 1.0), rng.uniform(0.8, 2.0)],
                  [rng.uniform(0, 6), rng.uniform(2, 7)])  # fmt: skip
        add_shelf("high", rng.uniform(10000, 18000), rng.uniform(-8, -2))
    return chain(ir, sos)
