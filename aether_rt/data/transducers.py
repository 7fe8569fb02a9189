"""Loudspeakers and microphones as users meet them in impulse responses.

Each function draws one device from physically grounded parameter ranges (the
sources are in docs/model.md, "The corpus") and returns its impulse response at
:data:`~aether_rt.data.filters.FS`:

* :func:`guitar_cabinet`: a closed- or open-back guitar cabinet, close-miked.
  Closed box: the driver's resonance raised by the air spring to ``fc`` with total
  ``Qtc``, i.e. a second-order high-pass (Small, "Closed-box loudspeaker systems",
  JAES 1972); guitar drivers have high ``Qts`` (0.4-1.0), so the low end peaks.
  Open back: the rear wave cancels the front below the baffle's path length
  (a dipole, -6 dB/octave). Cone break-up puts peaks and dips in the upper mids,
  and guitar drivers fall steeply above 4-7 kHz (24-48 dB/octave).
* :func:`bass_cabinet`: a vented (fourth-order) box tuned at 35-65 Hz, 10"/15"
  drivers, with or without a horn tweeter.
* :func:`microphone`: a capsule (dynamic, condenser, ribbon, lavalier, carbon) at a
  distance and angle: proximity effect of a pressure-gradient capsule
  (``1 + c / (j w r)`` for its gradient part), off-axis high-frequency loss and a
  reflection comb. Used alone and on every cabinet.
* :func:`small_speaker`: phones, laptops, TVs, telephone channels (ITU-T G.712
  300-3400 Hz), AM radio, megaphones and intercoms.
"""

from __future__ import annotations

import numpy as np

from aether_rt.data.filters import (
    SPEED_OF_SOUND_M_S,
    analog_sos,
    butter,
    chain,
    comb,
    highpass,
    impulse,
    log_uniform,
    lowpass,
    peaks,
    shelf,
)

_CAB_SAMPLES = 4096


def guitar_cabinet(rng: np.random.Generator, ir: np.ndarray | None = None) -> np.ndarray:
    """A guitar cabinet and the close microphone on it (``ir``: what drives it, default an impulse)."""
    x = impulse(_CAB_SAMPLES) if ir is None else ir
    driver_in = float(rng.choice([10.0, 12.0, 12.0, 12.0, 15.0]))
    scale = 12.0 / driver_in  # break-up and roll-off move up for smaller cones
    sections = []
    if rng.random() < 0.35:  # open back: driver resonance, then the dipole's cancellation
        sections.append(highpass(rng.uniform(65, 120), rng.uniform(0.6, 1.1)))
        path_m = rng.uniform(0.35, 0.9)
        sections.append(shelf("low", SPEED_OF_SOUND_M_S / (2.0 * path_m), -rng.uniform(6, 14)))
    else:  # closed back: the air spring raises fc; guitar drivers' high Qts makes it peak
        sections.append(highpass(rng.uniform(80, 170), rng.uniform(0.8, 1.8)))
    n_breakup = int(rng.integers(2, 5))
    sections.append(peaks(log_uniform(rng, 1200, 4500, n_breakup) * scale, rng.uniform(1.0, 5.0, n_breakup),
                          rng.uniform(-2, 9, n_breakup)))  # fmt: skip
    sections.append(peaks([log_uniform(rng, 500, 2000) * scale], [rng.uniform(0.7, 3)], [-rng.uniform(2, 9)]))
    sections.append(peaks([log_uniform(rng, 4000, 7500) * scale], [rng.uniform(2, 8)], [rng.uniform(0, 8)]))
    order = int(rng.integers(1, 5))  # 1..4 second-order sections: 12..48 dB/octave
    top_hz = log_uniform(rng, 3500, 7000) * scale
    sections.extend(lowpass(top_hz * rng.uniform(0.9, 1.15), rng.uniform(0.55, 1.3)) for _ in range(order))
    # Break-up modes do not stop at the piston band's edge: the cone and dust cap keep
    # radiating narrow resonances ("fizz") above the roll-off (Klippel's cone vibration
    # measurements), which a close microphone on the cap picks up.
    n_fizz = int(rng.integers(0, 4))
    sections.append(peaks(log_uniform(rng, 1.2, 2.5, n_fizz) * top_hz, rng.uniform(2, 8, n_fizz),
                          rng.uniform(3, 12, n_fizz)))  # fmt: skip
    return microphone(rng, chain(x, sections), distance_m=_piston_distance(rng, driver_in), on_cab=True)


def _piston_distance(rng: np.random.Generator, driver_in: float) -> float:
    """The distance the proximity effect sees for a microphone 1-50 cm from a cone.

    A cone is a large piston, not a point source: close to it the wavefront is nearly
    plane, so the gradient capsule's bass boost is what a point source half a cone
    radius further away would give.
    """
    return float(log_uniform(rng, 0.01, 0.5)) + 0.5 * (driver_in * 0.0254 / 2.0)


def bass_cabinet(rng: np.random.Generator) -> np.ndarray:
    """A vented bass cabinet (fourth-order alignment), with or without a horn tweeter, miked."""
    tuning_hz = rng.uniform(35, 65)
    sections = [highpass(tuning_hz, rng.uniform(0.5, 0.7)), highpass(tuning_hz * rng.uniform(0.9, 1.3), 1.3)]
    driver_in = float(rng.choice([10.0, 15.0]))
    top_hz = log_uniform(rng, 2000, 4500) * (15.0 / driver_in) ** 0.5
    n = int(rng.integers(1, 4))
    sections.append(peaks(log_uniform(rng, 400, 3000, n), rng.uniform(0.8, 4, n), rng.uniform(-6, 6, n)))
    if rng.random() < 0.5:  # horn tweeter: the top comes back above the crossover, attenuated
        sections.append(lowpass(top_hz, 0.7))
        sections.append(shelf("high", top_hz, rng.uniform(8, 20)))
        sections.append(lowpass(log_uniform(rng, 10000, 16000), 0.7))
    else:
        sections.extend([lowpass(top_hz, rng.uniform(0.6, 1.2)), lowpass(top_hz * 1.2, 0.7)])
    return microphone(rng, chain(impulse(_CAB_SAMPLES), sections), distance_m=_piston_distance(rng, driver_in),
                      on_cab=True)  # fmt: skip


_CAPSULES = ("dynamic", "condenser", "ribbon", "lavalier", "omni")


def microphone(
    rng: np.random.Generator,
    x: np.ndarray | None = None,
    *,
    distance_m: float | None = None,
    on_cab: bool = False,
) -> np.ndarray:
    """``x`` (default an impulse) as a random microphone capsule at a distance and angle hears it.

    On a cabinet the capsule is a dynamic or a ribbon most of the time, as in studios.
    """
    x = impulse(_CAB_SAMPLES) if x is None else x
    kinds = ("dynamic", "dynamic", "dynamic", "condenser", "ribbon") if on_cab else _CAPSULES
    kind = str(rng.choice(kinds))
    r = float(log_uniform(rng, 0.03, 1.0)) if distance_m is None else distance_m
    sections = []
    # Proximity: a first-order pressure-gradient capsule is (1 - g) + g (1 + c/(s r)) with
    # g the gradient fraction (cardioid 0.5, figure-8 1); its bass rises as 1/(k r). The
    # capsule's own bass roll-off (a second-order high-pass) is designed against it.
    g = {"dynamic": 0.5, "condenser": 0.5, "ribbon": 1.0, "lavalier": 0.0, "omni": 0.0}[kind]
    hp_hz, hp_q = {"dynamic": (rng.uniform(80, 200), 0.7), "condenser": (rng.uniform(20, 60), 0.7),
                   "ribbon": (rng.uniform(30, 80), 0.6), "lavalier": (rng.uniform(60, 150), 0.7),
                   "omni": (rng.uniform(20, 50), 0.7)}[kind]  # fmt: skip
    sections.append(capsule_low_end(g, r, hp_hz, hp_q))
    if kind == "dynamic":  # presence peak and a roll-off from the moving coil's mass
        sections += [peaks([rng.uniform(3500, 7000)], [rng.uniform(0.8, 2.5)], [rng.uniform(2, 7)]),
                     lowpass(rng.uniform(10000, 16000), 0.7)]  # fmt: skip
    elif kind == "condenser":
        sections.append(peaks([rng.uniform(6000, 12000)], [rng.uniform(0.7, 2.0)], [rng.uniform(0, 5)]))
    elif kind == "ribbon":  # dark: the ribbon's mass and the transformer
        sections.append(lowpass(rng.uniform(6000, 14000), rng.uniform(0.5, 0.8)))
    elif kind == "lavalier":  # chest resonance and the HF lift that compensates body shadowing
        sections.append(peaks([rng.uniform(500, 900), rng.uniform(5000, 10000)], [rng.uniform(1, 2), 1.0],
                              [rng.uniform(0, 5), rng.uniform(3, 9)]))  # fmt: skip
    angle = rng.uniform(0.0, 1.0) ** 2  # mostly on axis; 1 = 60 degrees off
    if angle > 0.02:  # off axis, and towards the cone's edge: the top falls away
        sections.append(shelf("high", rng.uniform(1500, 5000), -angle * rng.uniform(4, 12)))
    y = chain(x, sections)
    if r > 0.05 and rng.random() < 0.7:  # a reflection (floor, baffle, stand) arrives a little later
        extra_m = rng.uniform(0.15, 1.2) * min(1.0, r / 0.3 + 0.3)
        y = comb(y, extra_m / SPEED_OF_SOUND_M_S, rng.uniform(0.15, 0.5), lowpass_hz=rng.uniform(3000, 12000))
    return y


def capsule_low_end(gradient: float, distance_m: float, hp_hz: float, hp_q: float) -> np.ndarray:
    """A capsule's bass as SOS: its proximity effect against its own second-order roll-off.

    A capsule that is ``gradient`` pressure-gradient (0 omni, 0.5 cardioid, 1 figure-8)
    at ``distance_m`` from a point source hears ``1 + gradient * c / (s r)``; times the
    high-pass ``s^2 / (s^2 + w0/Q s + w0^2)`` that is ``s (s + g c / r) / (s^2 + ...)``.
    """
    w0 = 2.0 * np.pi * hp_hz
    if gradient <= 0.0:
        return highpass(hp_hz, hp_q)
    zero = gradient * SPEED_OF_SOUND_M_S / distance_m
    return analog_sos(np.array([1.0, zero, 0.0]), np.array([1.0, w0 / hp_q, w0 * w0]), 200.0)


def small_speaker(rng: np.random.Generator) -> np.ndarray:
    """A band-limited device: phone or laptop speaker, telephone line, AM radio, megaphone, intercom."""
    kind = str(rng.choice(["micro", "micro", "telephone", "radio", "megaphone", "intercom"]))
    x = impulse(_CAB_SAMPLES)
    if kind == "micro":  # a micro-speaker in a small box: high resonance, cavity peaks, top roll-off
        fc = log_uniform(rng, 250, 1000)
        n = int(rng.integers(1, 4))
        sections = [highpass(fc, rng.uniform(1.0, 3.0)), highpass(fc * rng.uniform(0.5, 1.0), 0.7),
                    peaks(log_uniform(rng, 1000, 9000, n), rng.uniform(1.5, 6, n), rng.uniform(-6, 8, n)),
                    lowpass(log_uniform(rng, 7000, 16000), rng.uniform(0.6, 1.2))]  # fmt: skip
    elif kind == "telephone":  # ITU-T G.712 channel: 300-3400 Hz, with a handset's receive peak
        sections = [butter(int(rng.integers(2, 5)), (rng.uniform(250, 400), rng.uniform(3000, 3600)), "bandpass"),
                    peaks([rng.uniform(1500, 3000)], [rng.uniform(0.8, 2)], [rng.uniform(0, 7)])]  # fmt: skip
    elif kind == "radio":  # AM broadcast: 5 kHz audio bandwidth, a small speaker
        sections = [butter(2, (rng.uniform(80, 250), rng.uniform(3500, 5500)), "bandpass"),
                    highpass(rng.uniform(120, 300), rng.uniform(1, 2.5)),
                    peaks([rng.uniform(800, 3000)], [rng.uniform(1, 3)], [rng.uniform(-3, 6)])]  # fmt: skip
    elif kind == "megaphone":  # a horn driver: narrow band, strong horn resonances
        n = int(rng.integers(2, 5))
        sections = [butter(3, (rng.uniform(350, 700), rng.uniform(3000, 5000)), "bandpass"),
                    peaks(log_uniform(rng, 700, 3500, n), rng.uniform(3, 9, n), rng.uniform(3, 11, n))]  # fmt: skip
    else:  # intercom / walkie-talkie: a narrow voice band and a harsh peak
        sections = [butter(3, (rng.uniform(300, 500), rng.uniform(2500, 3200)), "bandpass"),
                    peaks([rng.uniform(1000, 2200)], [rng.uniform(1, 4)], [rng.uniform(3, 10)])]  # fmt: skip
    return chain(x, sections)
