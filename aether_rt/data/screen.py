"""Is this audio an impulse response? Checks, each failing with a reason a user can act on.

An impulse response is what a system gives back for a single click: its energy arrives
around the loudest moment and then decays, within a few hundred samples for a guitar
cabinet, over seconds for a hall, but it decays. The checks follow from that, in this
order (the first that fails is the reason given):

1. **Length**: at least :data:`MIN_FRAMES` samples and at most :data:`MAX_SECONDS` (the
   longest natural reverbs fade within ~15 s; minutes are a recording).
2. **Finite, not silent**, and with several channels a mono mix that keeps more than
   :data:`CANCEL_DB` of the channels' energy (the feature mixes to mono; a channel of
   opposite polarity cancels the other).
3. **Onset**: at most :data:`PRE_PEAK_ENERGY` of the energy before the loudest sample.
   Pre-delay is silent; a cabinet's first millisecond may hold half its energy before
   its largest sample, and a linear-phase IR just under half; a reversed reverb holds
   nearly all of it there.
4. **DC**: a constant offset or a step leaves the file ending on a constant. Over the
   tail (the last quarter after the peak, at least :data:`DC_TAIL_SECONDS`, a cycle at
   20 Hz) the mean may not carry :data:`DC_SHARE` of the energy (mean at least twice the
   spread) at :data:`DC_LEVEL_DB` re the peak or louder. The feature averages Welch frames
   over up to 2 s, so an offset under a short IR is in every frame while the IR fills one
   or two: at -60 dB it already lifts the 47 Hz bin by a few dB. The whole file's spectrum
   is no test: an image-source room (every reflection positive) has as much 0 Hz as bass.
5. **Decay**, by Schroeder backward integration from the loudest sample: the second half
   of what follows the peak may hold at most :data:`LATE_ENERGY_DB` of that energy. Steady
   noise holds -3 dB there and music about as much; an exponential decay that falls
   ~7 dB or more over the file holds less. This is scale-free: a 5 ms cabinet and a 5 s
   hall pass alike, however slowly they decay, so long as the file covers their decay.
   A file whose second half is a steady level (10 ms windows within
   :data:`FLOOR_SPREAD_DB`) :data:`FLOOR_DROP_DB` or more below the peak sample (noise's
   own peaks stand ~13 dB above it) is an IR in a long noise floor: the reason says so,
   and to trim it.
6. **One attack**: music can decay overall (a phrase that fades) yet it is struck again
   and again. In 10 ms windows, a comeback is a return to within :data:`ATTACK_BACK_DB`
   of the loudest window after a dip below :data:`ATTACK_DIP_DB` of it;
   :data:`MAX_ATTACKS` or more is music (or a multi-tap echo). A room's strong late
   reflection makes one at most.
7. **Clipping**: a waveform driven past full scale sits at its peak level (within
   :data:`CLIP_TOLERANCE`, 0.001 dB) in :data:`MAX_CLIP_PLACES` or more places, or flat
   for 3 samples or more with a neighbour falling away steeply (a natural apex flat over
   3 samples is a parabola: its neighbours fall by under ~3x the tolerance).

Crest factor is no check of its own: a dense plate, or a hall without a direct sound,
has the crest factor of noise, and trailing silence changes it at will.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

MIN_FRAMES = 64
MAX_SECONDS = 60.0
CANCEL_DB = -20.0
DC_SHARE = 0.8
DC_LEVEL_DB = -60.0
DC_TAIL_SECONDS = 0.05
PRE_PEAK_ENERGY = 0.9
LATE_ENERGY_DB = -5.0
FLOOR_DROP_DB = 25.0
FLOOR_SPREAD_DB = 10.0
ATTACK_DIP_DB = -12.0
ATTACK_BACK_DB = -6.0
MAX_ATTACKS = 3
CLIP_TOLERANCE = 1e-4
MAX_CLIP_PLACES = 3
WINDOW_SECONDS = 0.01


class IrMeasures(NamedTuple):
    """What the checks measure on finite audio that is not silent.

    Attributes:
        peak_dbfs: the largest sample's level.
        mono_db: energy of the mono mix re the channels' mean energy (0 for one channel).
        pre_peak_energy: share of the energy before the loudest sample.
        post_peak_frames: samples from the loudest one to the end.
        dc_share: the tail's squared mean re its mean square (1: a constant).
        dc_level_db: the tail's mean re the peak.
        late_energy_db: Schroeder decay halfway from the peak to the end.
        floor_drop_db: how far below the peak sample that second half sits, if it is steady (else 0).
        attacks: comebacks to near the peak level after the peak.
        clip_places: places at the peak level, in the worst channel.
        clip_flat: flat-topped ones among them.

    """

    peak_dbfs: float
    mono_db: float
    pre_peak_energy: float
    post_peak_frames: int
    dc_share: float
    dc_level_db: float
    late_energy_db: float
    floor_drop_db: float
    attacks: int
    clip_places: int
    clip_flat: int


def screen_ir(audio: np.ndarray, sample_rate_hz: float) -> str | None:
    """Why ``audio`` is not a usable impulse response, or ``None`` if it is one.

    Args:
        audio: ``[frames]`` or ``[frames, channels]`` samples, full scale 1.
        sample_rate_hz: its sample rate.

    """
    x = np.asarray(audio, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    frames, rate = x.shape[0], float(sample_rate_hz)
    if frames < MIN_FRAMES:
        return f"too short: {frames} samples; an impulse response needs at least {MIN_FRAMES}"
    if frames > MAX_SECONDS * rate:
        return f"too long: {frames / rate:.0f} s; even a cathedral's reverb fades within ~15 s (music or a recording?)"
    bad = int(np.sum(~np.isfinite(x)))
    if bad:
        return f"contains NaN or Inf: {bad} of {x.size} samples"
    if not np.any(x):
        return "silent: every sample is zero"
    return _reason(measure_ir(x, rate))


def measure_ir(x: np.ndarray, sample_rate_hz: float) -> IrMeasures:
    """The checks' measures of finite, not silent audio ``[frames, channels]``."""
    energy = np.mean(x * x, axis=1)  # over channels: opposite polarities do not cancel here
    mono = x.mean(axis=1)
    n_peak = int(np.argmax(energy))
    post = energy[n_peak:]
    tail = mono[n_peak:][-min(post.size, max(post.size // 4, round(DC_TAIL_SECONDS * sample_rate_hz))) :]
    offset = float(np.mean(tail))
    levels = _window_levels(post, sample_rate_hz)
    places, flat = _clip_runs(x)
    return IrMeasures(
        peak_dbfs=round(_db(float(np.max(x * x))), 1) + 0.0,  # no "-0.0 dBFS"
        mono_db=_db(np.sum(mono * mono) / np.sum(energy)) if x.shape[1] > 1 else 0.0,
        pre_peak_energy=float(np.sum(energy[:n_peak]) / np.sum(energy)),
        post_peak_frames=post.size,
        dc_share=offset * offset / max(float(np.mean(tail * tail)), 1e-300),
        dc_level_db=_db(offset * offset / float(np.max(energy))),
        late_energy_db=_db(np.sum(post[post.size // 2 :]) / np.sum(post)),
        floor_drop_db=_floor_drop(levels, float(post[0])),
        attacks=_attacks(_window_levels(energy, sample_rate_hz)),
        clip_places=places,
        clip_flat=flat,
    )


def _reason(m: IrMeasures) -> str | None:
    if m.mono_db < CANCEL_DB:
        return f"its channels cancel when mixed to mono ({m.mono_db:.0f} dB): invert one, or keep one channel"
    if m.pre_peak_energy > PRE_PEAK_ENERGY:
        return (
            f"does not start with its loudest moment: {100 * m.pre_peak_energy:.0f} % of the energy comes "
            "before its peak (a reversed reverb, music or noise?)"
        )
    if m.post_peak_frames < MIN_FRAMES // 2:
        return f"ends at its loudest sample: only {m.post_peak_frames} samples follow it"
    if m.dc_share >= DC_SHARE and m.dc_level_db >= DC_LEVEL_DB:
        return (
            f"a DC offset or a step: it ends on a constant {m.dc_level_db:.0f} dB re its peak instead of "
            "decaying to zero; remove the offset (a high-pass at a few Hz)"
        )
    if m.late_energy_db > LATE_ENERGY_DB:
        return _no_decay(m)
    if m.attacks >= MAX_ATTACKS:
        return (
            f"struck again and again: {m.attacks} times it comes back to within {-ATTACK_BACK_DB:.0f} dB of its "
            "peak after fading (music, or a multi-tap echo?)"
        )
    if m.clip_flat or m.clip_places >= MAX_CLIP_PLACES:
        return (
            f"clipped: the waveform sits flat at its peak level ({m.peak_dbfs:.1f} dBFS) in {m.clip_places} "
            "place(s); use an unclipped version"
        )
    return None


def _no_decay(m: IrMeasures) -> str:
    late = f"{100 * 10 ** (m.late_energy_db / 10):.0f} % ({m.late_energy_db:.1f} dB)"
    if m.floor_drop_db >= FLOOR_DROP_DB:
        return (
            f"ends in a long noise floor {m.floor_drop_db:.0f} dB below its peak that holds {late} of the "
            "energy after the peak; trim the file where the decay ends"
        )
    return (
        f"does not decay: the second half of what follows its loudest sample still holds {late} of that "
        f"energy, an impulse response's under {100 * 10 ** (LATE_ENERGY_DB / 10):.0f} % "
        "(music, noise or a reversed reverb?)"
    )


def _clip_runs(x: np.ndarray) -> tuple[int, int]:
    """(places at the peak level, flat-topped ones among them) in the worst channel.

    A place is a run of same-sign samples within :data:`CLIP_TOLERANCE` of the channel's
    peak; flat-topped when it lasts 3 samples or more and a neighbour falls away by 10x
    the tolerance or more. A natural apex flat over 3 samples falls away by under ~3x the
    tolerance next to them (it is a parabola), whatever its frequency or sample rate.
    """
    worst = (0, 0)
    for channel in x.T:
        peak = float(np.max(np.abs(channel)))
        level = np.abs(channel) / peak if peak > 0 else np.zeros_like(channel)
        held = np.where(level >= 1.0 - CLIP_TOLERANCE, np.sign(channel), 0.0)
        change = np.flatnonzero(np.diff(np.concatenate(([0.0], held, [0.0]))))
        starts, ends = change[:-1], change[1:]
        runs = held[starts] != 0
        starts, ends = starts[runs], ends[runs]
        fall = np.maximum(_fall(level, channel, starts - 1, starts), _fall(level, channel, ends, starts))
        flat = int(np.sum((ends - starts >= 3) & (fall >= 10 * CLIP_TOLERANCE)))
        worst = max(worst, (int(starts.size), flat), key=lambda r: (r[1], r[0]))
    return worst


def _fall(level: np.ndarray, channel: np.ndarray, at: np.ndarray, run_starts: np.ndarray) -> np.ndarray:
    """How far the neighbours ``at`` of runs fall below the peak level (1 past either end of the file)."""
    inside = (at >= 0) & (at < level.size)
    idx = np.clip(at, 0, level.size - 1)
    same_side = np.sign(channel[idx]) == np.sign(channel[run_starts])
    return np.where(inside, np.where(same_side, 1.0 - level[idx], 1.0 + level[idx]), 0.0)


def _window_levels(post: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Mean energy in windows of :data:`WINDOW_SECONDS` (1/32 of a shorter file)."""
    width = int(np.clip(post.size // 32, 1, round(WINDOW_SECONDS * sample_rate_hz)))
    n = post.size // width
    return post[: n * width].reshape(n, width).mean(axis=1)


def _floor_drop(levels: np.ndarray, peak_energy: float) -> float:
    """How far (dB) below the peak sample a steady second half sits; 0 if it is not steady.

    Steady: its 90th-percentile window within :data:`FLOOR_SPREAD_DB` of its median one
    (music's pauses and notes spread far wider).
    """
    late = levels[levels.size // 2 :]
    median = float(np.median(late)) if late.size >= 2 else 0.0
    if median <= 0.0 or _db(float(np.percentile(late, 90)) / median) > FLOOR_SPREAD_DB:
        return 0.0
    return _db(peak_energy / median)


def _attacks(levels: np.ndarray) -> int:
    """Comebacks: windows back within :data:`ATTACK_BACK_DB` of the loudest after a dip below :data:`ATTACK_DIP_DB`.

    Counted from the first window that loud, so a pre-delay's silence is no dip.
    """
    loud = levels >= np.max(levels) * 10 ** (ATTACK_BACK_DB / 10)
    quiet = levels < np.max(levels) * 10 ** (ATTACK_DIP_DB / 10)
    count, dipped = 0, False
    for is_loud, is_quiet in zip(loud[np.argmax(loud) :], quiet[np.argmax(loud) :], strict=True):
        if is_quiet:
            dipped = True
        elif is_loud and dipped:
            count, dipped = count + 1, False
    return count


def _db(power_ratio: float) -> float:
    return 10.0 * math.log10(power_ratio) if power_ratio > 0 else -math.inf
