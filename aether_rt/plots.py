"""Figures: the latent sweep (the model card's feature visualisation) and the latent map.

The command line (``sweep``, ``map``) writes them to files; the web page shows the same
figures, drawn by the same functions into memory.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import IO, Any

import numpy as np

from aether_rt.dsp.measures import FEATURES
from aether_rt.models.checkpoint import LoadedModel
from aether_rt.models.design import response_db
from aether_rt.modulation import LEARNED_BOUND

SWEEP_VALUES = np.linspace(-2.0, 2.0, 9)
#: The latent map's extent (|z| <= 3, the sliders' range); the learned region (dashed) is LEARNED_BOUND.
MAP_BOUND = 3.0
MAP_POINTS = 61
#: How long the labels of a library map are moved apart, per plane (seconds; a step past it ends).
LABEL_SECONDS = 1.0
#: Labels moved apart on a library map, at most: adjustText's step is quadratic in them (16 s per
#: plane for 300), so more are left beside their points (the key names them all the same).
SPREAD_LABELS = 100
#: A library map names up to this many IRs beside their points; more are numbered, with a key below.
NAMED_POINTS = 12
KEY_ROWS = 20  # a key's rows per column, when the width allows
KEY_COLUMN_IN = 2.6  # a key column's width (inches): KEY_NAME_CHARS monospace characters at 7 pt and more
KEY_NAME_CHARS = 38
KEY_ROW_IN = 7 * 1.25 / 72  # a key line's height (inches): 7 pt at 1.25 line spacing
LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7}
#: The log-spaced grid the map's features are measured on.
MAP_FREQS_HZ = np.geomspace(20.0, 20_000.0, 240)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sweep_responses(model: LoadedModel, freqs_hz: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Responses ``[latent_dim, len(SWEEP_VALUES), n_freqs]`` in dB: each dim swept, the others 0."""
    dim = model.config.latent_dim
    z = np.zeros((dim, SWEEP_VALUES.size, dim))
    for d in range(dim):
        z[d, :, d] = SWEEP_VALUES
    return np.asarray(response_db(model.decode(z), freqs_hz, sample_rate_hz))


def save_sweep(model: LoadedModel, out: Path | IO[bytes], *, sample_rate_hz: float = 48_000.0) -> None:
    """Draw one panel per latent dim: the response as it sweeps -2..2 (log frequency, dB).

    ``out`` is a path (the format from its suffix) or a binary file (PNG).
    """
    plt = _pyplot()
    freqs = np.geomspace(20.0, 0.49 * sample_rate_hz, 400)
    curves = sweep_responses(model, freqs, sample_rate_hz)
    dim = curves.shape[0]
    cols = 2 if dim > 1 else 1
    rows = (dim + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 3.4 * rows), squeeze=False, sharey=True)
    cmap = plt.get_cmap("coolwarm")
    for d in range(rows * cols):
        ax = axes[d // cols][d % cols]
        if d >= dim:
            ax.axis("off")
            continue
        for i, value in enumerate(SWEEP_VALUES):
            ax.semilogx(freqs, curves[d, i], color=cmap(i / (SWEEP_VALUES.size - 1)), lw=1.2, label=f"{value:+.1f}")
        ax.set_title(f"z{d} swept -2..2, others 0")
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("gain (dB)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(title="z", fontsize=7, ncol=3)
    fig.suptitle("aether-rt latent sweep: each dim alone")
    fig.tight_layout()
    fig.savefig(out, dpi=110, format=None if isinstance(out, Path) else "png")
    plt.close(fig)


def latent_slice(
    model: LoadedModel,
    dims: tuple[int, int],
    feature: str,
    *,
    at: np.ndarray | None = None,
    points: int = MAP_POINTS,
    sample_rate_hz: float = 48_000.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A feature of the response over a 2-D slice of the latent space.

    z[dims[0]] and z[dims[1]] run over ``-MAP_BOUND..MAP_BOUND``; the other dims stay at
    ``at`` (default 0). Returns ``(values [points], grid [points (dims[1]), points (dims[0])])``.

    Raises:
        ValueError: dims out of range or equal, an unknown feature, or ``at`` of the wrong size.

    """
    n = model.config.latent_dim
    x_dim, y_dim = dims
    if not (0 <= x_dim < n and 0 <= y_dim < n) or x_dim == y_dim:
        raise ValueError(f"dims must be two different latent dims in 0..{n - 1}, got {dims}")
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {', '.join(FEATURES)}, got {feature!r}")
    base = np.zeros(n) if at is None else np.asarray(at, dtype=np.float64)
    if base.shape != (n,):
        raise ValueError(f"at must have {n} values, got {base.shape}")
    values = np.linspace(-MAP_BOUND, MAP_BOUND, points)
    z = np.broadcast_to(base, (points, points, n)).copy()
    z[:, :, x_dim] = values[None, :]
    z[:, :, y_dim] = values[:, None]
    responses = np.asarray(response_db(model.decode(z.reshape(-1, n)), MAP_FREQS_HZ, sample_rate_hz))
    grid = FEATURES[feature][0](responses, MAP_FREQS_HZ).reshape(points, points)
    return values, grid


def _draw_learned_region(ax: Any) -> None:
    b = LEARNED_BOUND
    ax.plot([-b, b, b, -b, -b], [-b, -b, b, b, -b], color="white", ls="--", lw=1.0, alpha=0.8)


def save_map(
    model: LoadedModel,
    out: Path | IO[bytes],
    *,
    dims: tuple[int, int] = (0, 1),
    features: tuple[str, ...] = ("centroid", "tilt"),
    at: np.ndarray | None = None,
    sample_rate_hz: float = 48_000.0,
) -> None:
    """Draw the latent map: one panel per feature over the (dims) slice, the learned region dashed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(features), figsize=(5.2 * len(features), 4.6), squeeze=False, layout="constrained")
    n = model.config.latent_dim
    others = ", ".join(f"z{i}={0.0 if at is None else at[i]:g}" for i in range(n) if i not in dims)
    for ax, feature in zip(axes[0], features, strict=True):
        _draw_slice(fig, ax, model, dims, feature, at, sample_rate_hz)
    fig.suptitle(f"aether-rt latent map: z{dims[0]} x z{dims[1]}" + (f" ({others})" if others else ""))
    fig.savefig(out, dpi=110, format=None if isinstance(out, Path) else "png")
    plt.close(fig)


def _draw_slice(
    fig: Any, ax: Any, model: LoadedModel, dims: tuple[int, int], feature: str, at: Any, sample_rate_hz: float
) -> None:
    """One map panel: the feature over the (dims) slice, its colour bar, the learned region dashed."""
    from matplotlib.colors import LogNorm, Normalize

    values, grid = latent_slice(model, dims, feature, at=at, sample_rate_hz=sample_rate_hz)
    _, label, cmap = FEATURES[feature]
    norm = LogNorm(grid.min(), grid.max()) if feature == "centroid" else None
    if feature == "tilt":
        span = float(np.abs(grid).max()) or 1.0
        norm = Normalize(-span, span)  # 0 dB/octave in the colour map's middle
    extent = (values[0], values[-1], values[0], values[-1])
    image = ax.imshow(grid, origin="lower", extent=extent, cmap=cmap, norm=norm, aspect="equal")
    _draw_learned_region(ax)
    ax.set_xlabel(f"z{dims[0]}")
    ax.set_ylabel(f"z{dims[1]}")
    ax.set_title(label)
    fig.colorbar(image, ax=ax, shrink=0.85)


def library_planes(latent_dim: int) -> list[tuple[int, int]]:
    """The planes an IR library is drawn on: (z0, z1), and (z2, z3) when there are 4 dims or more."""
    return [(a, a + 1) for a in range(0, min(latent_dim, 4) - 1, 2)]


def save_library_map(
    model: LoadedModel,
    out: Path | IO[bytes],
    points: list[tuple[str, np.ndarray]],
    *,
    feature: str = "centroid",
    sample_rate_hz: float = 48_000.0,
) -> None:
    """Draw IRs as labelled points over the map's planes (:func:`library_planes`).

    Args:
        model: the model (latent dim >= 2).
        out: a path (format from its suffix) or a binary file (PNG).
        points: ``(label, z [latent_dim])`` per IR. A point outside the learned region is
            hollow; one beyond the map's ``+-MAP_BOUND`` sits on its edge.
        feature: the backdrop's colour (the slice with the other dims at 0).
        sample_rate_hz: the design rate of the backdrop.

    Raises:
        ValueError: a model with one latent dim (no plane to draw).

    """
    planes = library_planes(model.config.latent_dim)
    if not planes:
        raise ValueError("a model with one latent dim has no plane to draw")
    plt = _pyplot()
    z = np.array([p[1] for p in points], dtype=np.float64).reshape(len(points), -1)
    inside = np.all(np.abs(z) <= LEARNED_BOUND + 1e-9, axis=1)
    shown = np.clip(z, -MAP_BOUND, MAP_BOUND)
    width_in = 6.4 * len(planes)
    columns, rows = key_layout(len(points), width_in)
    named = rows == 0
    key_in = 0.0 if named else 0.35 + KEY_ROW_IN * rows
    fig = plt.figure(figsize=(width_in, 5.8 + key_in), layout="constrained")
    grid = fig.add_gridspec(1 if named else 2, len(planes), height_ratios=None if named else [5.8, key_in])
    for i, (a, b) in enumerate(planes):
        ax = fig.add_subplot(grid[0, i])
        _draw_slice(fig, ax, model, (a, b), feature, None, sample_rate_hz)
        ax.set_xlim(-MAP_BOUND, MAP_BOUND)
        ax.set_ylim(-MAP_BOUND, MAP_BOUND)
        ax.set_title(f"z{a} x z{b}; backdrop: {FEATURES[feature][1]}, the other dims at 0", fontsize=9)
        for k in range(len(points)):
            face = "white" if inside[k] else "none"
            ax.plot(shown[k, a], shown[k, b], "o", ms=6, mfc=face, mec="black", mew=1.2, clip_on=False)
        texts = []
        for k, (label, _) in enumerate(points):
            beyond = max(abs(z[k, a]), abs(z[k, b])) > MAP_BOUND
            text = label + (" (beyond the map)" if beyond else "") if named else str(k + 1)
            texts.append(ax.text(shown[k, a], shown[k, b], text, fontsize=7 if named else 6, bbox=LABEL_BOX))
        _spread_labels(ax, texts, shown[:, a], shown[:, b])
    if not named:
        _draw_key(fig.add_subplot(grid[1, :]), [label for label, _ in points], inside, columns, rows)
    n = model.config.latent_dim
    unseen = f"; z4..z{n - 1} not drawn" if n > 4 else ""
    fig.suptitle(
        f"aether-rt: {len(points)} IRs on the latent map (filled: inside the learned |z_i| <= {LEARNED_BOUND:g}, "
        f"hollow: outside: {int(np.sum(~inside))} of {len(points)}{unseen})"
    )
    fig.savefig(out, dpi=110, format=None if isinstance(out, Path) else "png")
    plt.close(fig)


def key_layout(count: int, width_in: float) -> tuple[int, int]:
    """A library map's key: ``(columns, rows)``, or ``(0, 0)`` when its IRs are named beside their points.

    Up to :data:`NAMED_POINTS` IRs are named on the planes. More are numbered there, with
    their names in a key below, in columns of :data:`KEY_ROWS` while the figure's width
    allows, then in longer ones.
    """
    if count <= NAMED_POINTS:
        return 0, 0
    columns = max(1, min(math.ceil(count / KEY_ROWS), int(width_in / KEY_COLUMN_IN)))
    return columns, math.ceil(count / columns)


def _spread_labels(ax: Any, texts: list[Any], x: np.ndarray, y: np.ndarray) -> None:
    """Move labels off each other and off the points, each tied to its point by a line (adjustText).

    A library's IRs crowd where its family lies (70 guitar cabinets within a unit square):
    labels placed beside their points hid each other and the points. The search stops
    after :data:`LABEL_SECONDS` per plane; beyond :data:`SPREAD_LABELS` labels it is not
    run, so a library of hundreds still draws in seconds.
    """
    from adjustText import adjust_text

    if 0 < len(texts) <= SPREAD_LABELS:
        adjust_text(texts, x=list(x), y=list(y), ax=ax, time_lim=LABEL_SECONDS,
                    arrowprops={"arrowstyle": "-", "color": "black", "lw": 0.5, "alpha": 0.6})  # fmt: skip


def _draw_key(ax: Any, labels: list[str], inside: np.ndarray, columns: int, rows: int) -> None:
    """The numbered points' names, in columns (those outside the learned region marked)."""
    ax.axis("off")
    for c in range(columns):
        lines = []
        for k in range(c * rows, min((c + 1) * rows, len(labels))):
            name = labels[k] if len(labels[k]) <= KEY_NAME_CHARS else labels[k][: KEY_NAME_CHARS - 1] + "…"
            lines.append(f"{k + 1:>4} {name}" + ("" if inside[k] else " (outside)"))
        ax.text(c / columns, 1.0, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=7,
                family="monospace", linespacing=1.25)  # fmt: skip


def plane_png(
    model: LoadedModel,
    dims: tuple[int, int],
    feature: str = "centroid",
    *,
    pixels: int = 121,
    sample_rate_hz: float = 48_000.0,
) -> bytes:
    """The latent slice as a bare picture (no axes): the web page's backdrop for the moving z."""
    plt = _pyplot()
    _, grid = latent_slice(model, dims, feature, points=pixels, sample_rate_hz=sample_rate_hz)
    if feature == "centroid":
        grid = np.log(grid)  # the same log colour scale as the map
    buf = io.BytesIO()
    plt.imsave(buf, grid, origin="lower", cmap=FEATURES[feature][2], format="png")
    return buf.getvalue()


def figure_png(draw: Any, model: LoadedModel, **kwargs: Any) -> bytes:
    """``draw(model, file, **kwargs)`` (:func:`save_sweep`, :func:`save_map`) into PNG bytes."""
    buf = io.BytesIO()
    draw(model, buf, **kwargs)
    return buf.getvalue()
