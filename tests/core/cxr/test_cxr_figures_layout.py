"""CXR layout (issue 31): colour bars stay under their own panel; the label and the attribution
sit in strips outside the image, which the exported PNG keeps whole."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from core.report.cxr_figures import forecast_panels, labelled_png


def test_colour_bars_stay_within_their_own_panel():
    img = np.random.default_rng(0).random((8, 8))
    fig = forecast_panels(img, img, img * 0.1, img - 0.5, "t", truth=img)
    bars = [(i, t.colorbar) for i, t in enumerate(fig.data, start=1) if t.showscale]
    assert len(bars) == 2  # uncertainty and change
    for col, bar in bars:
        x0, x1 = fig.layout[f"xaxis{col if col > 1 else ''}"].domain
        half = bar.len / 2
        assert x0 <= bar.x - half and bar.x + half <= x1 and bar.orientation == "h"


def test_label_and_attribution_leave_every_image_pixel_visible():
    pixels = np.full((16, 16), 0.5)  # mid grey everywhere, so any strip over it would show
    png = Image.open(io.BytesIO(labelled_png(pixels, size=64, footer="CC BY 3.0, a source " * 3)))
    arr = np.asarray(png)
    assert arr.shape[1] == 64 and arr.shape[0] > 64 + 16  # strips above and below the image
    image = arr[16 : 16 + 64]
    assert np.all(np.abs(image.astype(int) - 128) <= 1)  # the image itself is untouched
    assert arr[:16].max() > 200 and arr[16 + 64 :].max() > 200  # text in the strips
