"""A seeded synthetic corpus of realistic impulse responses (no download needed).

Two families, half each:

* **Rooms**: shoebox rooms simulated by the image-source method (pyroomacoustics),
  3 to 25 m long, each surface a material from pyroomacoustics' absorption database
  (floors from floor coverings, ceilings may be acoustic tiles), random source and
  microphone positions, air absorption; half of them through a random microphone.
* **Stochastic**: sparse early reflections (random delays, signs and wall low-passes)
  plus a noise tail decaying with a different RT60 in each octave band, coloured by a
  random guitar cabinet, full-range speaker and/or microphone model (high-pass, low
  resonance, presence peak, cone-breakup notches, high-frequency roll-off).

IR number ``i`` depends only on ``(seed, i)``, so a corpus is the same however it is
split across processes.
"""

from __future__ import annotations

import numpy as np
import scipy.signal as ss

from aether_rt.dsp.biquad import peaking_coeffs, to_sos

FS = 48_000.0
# Scale of every cabinet/speaker/microphone gain. Device responses multiply IR colouration
# by many independent peaks and shelves; at full scale (1.0) the corpus needs ~16 PCA
# components for 0.5 dB, far beyond a 4-number latent space, so devices colour the
# rooms at half their nominal gains (measured in tests/test_data.py and docs/model.md).
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


def synthetic_ir(index: int, seed: int = 0) -> np.ndarray:
    """Impulse response number ``index`` of the corpus ``seed``, float64 at 48 kHz."""
    rng = np.random.default_rng([seed, index])
    ir = _room(rng) if index % 2 == 0 else _stochastic(rng)
    return ir / np.max(np.abs(ir))


def _room(rng: np.random.Generator) -> np.ndarray:
    import pyroomacoustics as pra

    length = rng.uniform(3.0, 25.0)
    dims = np.array([length, rng.uniform(2.5, max(3.0, 0.9 * length)), rng.uniform(2.3, 8.0)])
    known = pra.materials_absorption_table
    pick = lambda names: str(rng.choice([n for n in names if n in known]))  # noqa: E731
    materials = pra.make_materials(
        ceiling=pick(_CEILINGS), floor=pick(_FLOORS),
        east=pick(_WALLS), west=pick(_WALLS), north=pick(_WALLS), south=pick(_WALLS),
    )  # fmt: skip
    room = pra.ShoeBox(dims, fs=int(FS), materials=materials, max_order=int(rng.integers(8, 15)), air_absorption=True)
    margin = 0.4
    src = rng.uniform(margin, dims - margin)
    mic = rng.uniform(margin, dims - margin)
    while np.linalg.norm(mic - src) < 0.5:
        mic = rng.uniform(margin, dims - margin)
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    ir = np.asarray(room.rir[0][0], dtype=np.float64)
    return _colour(ir, rng, mic=rng.random() < 0.5, cab=False, speaker=False)


def _stochastic(rng: np.random.Generator) -> np.ndarray:
    rt60_s = rng.uniform(0.15, 2.5)
    length = int(min(2.0, 1.2 * rt60_s + 0.1) * FS)
    t = np.arange(length) / FS
    ir = np.zeros(length)
    ir[0] = 1.0
    # Early reflections: a few delayed, attenuated, low-passed copies.
    for _ in range(int(rng.integers(3, 20))):
        delay = int(rng.uniform(0.001, 0.06) * FS)
        tap = np.zeros(length)
        tap[delay] = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.8) * np.exp(-delay / FS / 0.05)
        ir += ss.lfilter([1.0 - (pole := rng.uniform(0.0, 0.8))], [1.0, -pole], tap)
    # Diffuse tail: octave bands decaying at their own rate (high bands faster). Level and
    # decay vary smoothly with frequency (a tilt and a curvature in log frequency), as
    # absorption spectra do; independent random bands would be neither real nor learnable.
    hf_factor = rng.uniform(0.4, 1.0)
    tilt_db, curve_db = rng.uniform(-4.0, 4.0), rng.uniform(-3.0, 3.0)
    onset = rng.uniform(0.005, 0.05)
    envelope_on = np.clip((t - onset) / 0.02, 0.0, 1.0)
    noise = rng.standard_normal(length)
    tail = np.zeros(length)
    for k, centre in enumerate(62.5 * 2.0 ** np.arange(9)):  # 62.5 Hz .. 16 kHz
        u = (k - 4.0) / 4.0
        band = ss.sosfilt(ss.butter(2, [centre / np.sqrt(2), min(centre * np.sqrt(2), 0.45 * FS)], "bandpass", fs=FS,
                                    output="sos"), noise)  # fmt: skip
        rt = rt60_s * hf_factor ** (k / 8.0)
        tail += band * 10.0 ** ((tilt_db * u + curve_db * (u * u - 1.0 / 3.0)) / 20.0) * np.exp(-6.91 * t / rt)
    ir += tail * envelope_on * rng.uniform(0.05, 0.6) / (np.std(tail[: int(0.05 * FS)]) + 1e-12)
    return _colour(ir, rng, mic=rng.random() < 0.5, cab=rng.random() < 0.3, speaker=rng.random() < 0.4)


def _shelf(kind: str, freq_hz: float, gain_db: float) -> np.ndarray:
    """An RBJ cookbook shelf (slope 1) as one SciPy sos row.

    Device roll-offs are modelled as shelves, not Butterworth low/high-passes: a
    bilinear low-pass puts a zero at Nyquist (infinite attenuation in the top bins)
    that no real speaker or microphone has.
    """
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq_hz / FS
    cos, alpha = np.cos(w0), np.sin(w0) / np.sqrt(2.0)
    root = 2.0 * np.sqrt(a) * alpha
    sign = 1.0 if kind == "low" else -1.0
    b = a * np.array(
        [(a + 1) - sign * (a - 1) * cos + root, sign * 2 * ((a - 1) - sign * (a + 1) * cos),
         (a + 1) - sign * (a - 1) * cos - root]
    )  # fmt: skip
    den = np.array([(a + 1) + sign * (a - 1) * cos + root, -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
                    (a + 1) + sign * (a - 1) * cos - root])  # fmt: skip
    return np.concatenate([b, den]) / den[0]


def _colour(ir: np.ndarray, rng: np.random.Generator, *, mic: bool, cab: bool, speaker: bool) -> np.ndarray:
    """Pass an IR through random cabinet, speaker and microphone models.

    Every gain is scaled by ``COLOUR_STRENGTH`` (see its comment).
    """
    sos: list[np.ndarray] = []
    k = COLOUR_STRENGTH

    def peaks(freq_hz: list[float], q: list[float], gain_db: list[float]) -> None:
        sos.append(to_sos(peaking_coeffs(np.array(freq_hz), np.array(q), k * np.array(gain_db), FS)))

    def shelf(kind: str, freq_hz: float, gain_db: float) -> None:
        sos.append(_shelf(kind, freq_hz, k * gain_db)[None])

    if cab:  # a closed guitar cabinet: tight low end, resonance, presence, steep top, breakup notches
        shelf("low", rng.uniform(70, 130), rng.uniform(-18, -8))
        for _ in range(2):
            shelf("high", rng.uniform(3500, 8000), rng.uniform(-12, -6))
        peaks(
            [rng.uniform(80, 160), rng.uniform(1500, 4000), rng.uniform(2000, 6000), rng.uniform(700, 1500)],
            [rng.uniform(1, 3), rng.uniform(0.7, 2), rng.uniform(4, 12), rng.uniform(1, 4)],
            [rng.uniform(2, 8), rng.uniform(2, 7), rng.uniform(-12, -4), rng.uniform(-6, 3)],
        )
    if speaker:  # a full-range speaker: band limits and ripple
        shelf("low", rng.uniform(50, 200), rng.uniform(-15, -5))
        shelf("high", rng.uniform(9000, 18000), rng.uniform(-12, -3))
        n = int(rng.integers(2, 6))
        peaks(list(np.exp(rng.uniform(np.log(200), np.log(12000), n))), list(rng.uniform(1, 5, n)),
              list(rng.uniform(-4, 4, n)))  # fmt: skip
    if mic:  # a microphone: proximity bass, presence peak, top roll-off
        peaks([rng.uniform(80, 250), rng.uniform(3000, 8000)], [rng.uniform(0.5, 1.0), rng.uniform(0.8, 2.0)],
              [rng.uniform(0, 6), rng.uniform(2, 7)])  # fmt: skip
        shelf("high", rng.uniform(10000, 18000), rng.uniform(-8, -2))
    return ss.sosfilt(np.concatenate(sos), ir) if sos else ir
