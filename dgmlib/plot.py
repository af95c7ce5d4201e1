"""Figures every chapter needs: image grids, 2-D densities, and sampler animations.

Functions draw on a given ``ax`` (or make one) and return the figure or artist, so a
chapter can compose them; :func:`animate` returns HTML (jshtml) so the static book shows
a sampler moving without a running kernel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

__all__ = [
    "image_grid",
    "show_images",
    "density_2d",
    "scatter_2d",
    "animate",
    "animate_images",
]


def _np(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def image_grid(
    images,
    shape: tuple[int, int],
    *,
    ncol: int | None = None,
    pad: int = 1,
    pad_value: float = 1.0,
) -> np.ndarray:
    """Tile flat images (N, H*W) or (N, H, W) into one (rows*(H+pad)-pad,
    cols*(W+pad)-pad) array.
    """
    x = _np(images)
    h, w = shape
    if x.ndim == 1:
        x = x[None]
    if x.shape[-1] * (x.shape[-2] if x.ndim == 3 else 1) != h * w or x.ndim not in (
        2,
        3,
    ):
        raise ValueError(
            f"image_grid expects images of shape (N, {h * w}) or (N, {h}, {w}); got "
            f"{x.shape}"
        )
    x = x.reshape(-1, h, w)
    n = x.shape[0]
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = np.full(
        (nrow * (h + pad) - pad, ncol * (w + pad) - pad), pad_value, dtype=np.float64
    )
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = x[
            i
        ]
    return grid


def show_images(
    images,
    shape: tuple[int, int],
    *,
    ncol: int | None = None,
    ax=None,
    title: str | None = None,
    cmap: str = "gray_r",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
):
    """Draw a grid of images on ``ax`` (a new figure if None); returns the AxesImage."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    grid = image_grid(images, shape, ncol=ncol, pad_value=np.nan)
    cm = plt.get_cmap(cmap).copy()
    cm.set_bad("white")
    im = ax.imshow(grid, cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return im


def density_2d(
    log_prob: Callable[[Tensor], Tensor],
    *,
    extent=(-4, 4, -4, 4),
    n: int = 200,
    ax=None,
    title: str | None = None,
    cmap: str = "viridis",
    dtype=torch.float64,
):
    """Show exp(log_prob) on an n x n grid over ``extent`` = (x0, x1, y0, y1); returns
    (ax, density, cell_area).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    x0, x1, y0, y1 = extent
    xs = torch.linspace(x0, x1, n, dtype=dtype)
    ys = torch.linspace(y0, y1, n, dtype=dtype)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (n*n, 2)
    with torch.no_grad():
        dens = log_prob(pts).exp().reshape(n, n)
    ax.imshow(_np(dens), origin="lower", extent=extent, cmap=cmap, aspect="auto")
    if title:
        ax.set_title(title)
    cell_area = (x1 - x0) / (n - 1) * (y1 - y0) / (n - 1)
    return ax, dens, cell_area


def scatter_2d(
    x,
    *,
    ax=None,
    s: float = 2.0,
    alpha: float = 0.5,
    c=None,
    title: str | None = None,
    **kw,
):
    """Scatter an (N, 2) array of points."""
    pts = _np(x)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"scatter_2d expects points of shape (N, 2); got {pts.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, c=c, **kw)
    if title:
        ax.set_title(title)
    return ax


def animate(
    draw: Callable[[int], None],
    n_frames: int,
    *,
    fig,
    interval: int = 200,
    embed_limit_mb: float = 20.0,
):
    """Turn ``draw(frame_index)`` (which redraws ``fig``) into an HTML animation
    (jshtml).

    The figure is closed so the notebook does not also show a static copy. Returns an
    :class:`IPython.display.HTML` that plays in Jupyter, on Colab and in the static
    book.
    """
    from IPython.display import HTML
    from matplotlib import animation

    if n_frames < 1:
        raise ValueError(
            f"an animation needs at least one frame; got n_frames={n_frames}"
        )
    plt.rcParams["animation.embed_limit"] = embed_limit_mb
    anim = animation.FuncAnimation(
        fig, lambda i: draw(i), frames=n_frames, interval=interval, blit=False
    )
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return HTML(_offline_controls(html))


# matplotlib's player links Font Awesome from a CDN for its button icons; the book must
# work offline, so the link is dropped and each icon becomes a plain Unicode symbol.
_ICONS = {  # symbols every common font has (DejaVu, Liberation, the system UI fonts)
    "fa fa-minus": "&minus;",
    "fa fa-plus": "+",
    "fa fa-fast-backward": "&#x21E4;",
    "fa fa-step-backward": "&#x2190;",
    "fa fa-play fa-flip-horizontal": "&#x25C0;",
    "fa fa-pause": "||",
    "fa fa-play": "&#x25B6;",
    "fa fa-step-forward": "&#x2192;",
    "fa fa-fast-forward": "&#x21E5;",
}


def _offline_controls(html: str) -> str:
    html = re.sub(
        r'<link rel="stylesheet"\s*href="https?://[^"]*font-awesome[^"]*">', "", html
    )
    for cls, symbol in _ICONS.items():
        html = html.replace(f'<i class="{cls}"></i>', symbol)
    return html


def animate_images(
    frames: Sequence,
    shape: tuple[int, int],
    *,
    ncol: int | None = None,
    titles: Sequence[str] | None = None,
    interval: int = 200,
    figsize=(4, 4),
):
    """Animate a sequence of image batches, e.g. the states of Gibbs chains after each
    step.

    ``frames[t]`` is (N, H*W); ``titles[t]`` (optional) is shown above frame t.
    """
    if len(frames) == 0:
        raise ValueError("animate_images needs at least one frame")
    fig, ax = plt.subplots(figsize=figsize)
    grid0 = image_grid(frames[0], shape, ncol=ncol)
    im = ax.imshow(grid0, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()

    def draw(t: int) -> None:
        im.set_data(image_grid(frames[t], shape, ncol=ncol))
        if titles is not None:
            ax.set_title(titles[t])

    return animate(draw, len(frames), fig=fig, interval=interval)
