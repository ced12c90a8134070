"""Top-view drawing of one cuboid-push environment, shared by both backends (needs Pillow)."""

from __future__ import annotations

import math
from typing import Optional, Sequence


def draw_top_view(
    box_xy: Sequence[float],
    box_yaw: float,
    box_half: float,
    target_xy: Sequence[float],
    success_radius: float,
    robots_xy: Sequence[Sequence[float]],
    robots_yaw: Sequence[float],
    robot_size: Sequence[float] = (0.5, 0.25),
    trails: Optional[Sequence[Sequence[Sequence[float]]]] = None,
    size: int = 480,
    extent: float = 4.5,
):
    """RGB uint8 array (size, size, 3): a square view of +-extent metres around the box's spawn.

    Box (grey, with a line from its centre marking its yaw), target disc and success radius
    (green), robots as oriented rectangles with a heading tick (blue, orange), optional trails
    (one [box, robot0, robot1] triple of xy per recorded step).
    """
    try:
        from PIL import Image, ImageDraw
    except ImportError as err:  # Pillow is optional: only rendering needs it
        raise ImportError("rendering needs Pillow: pip install pillow") from err
    import numpy as np

    scale = size / (2.0 * extent)

    def px(x: float, y: float):
        return (size / 2.0 + x * scale, size / 2.0 - y * scale)

    def corners(cx, cy, yaw, half_l, half_w):
        c, s = math.cos(yaw), math.sin(yaw)
        pts = [(half_l, half_w), (-half_l, half_w), (-half_l, -half_w), (half_l, -half_w)]
        return [px(cx + c * a - s * b, cy + s * a + c * b) for a, b in pts]

    img = Image.new("RGB", (size, size), (250, 250, 245))
    draw = ImageDraw.Draw(img)
    for k in range(-int(extent), int(extent) + 1):  # 1 m grid
        draw.line([px(k, -extent), px(k, extent)], fill=(230, 230, 225))
        draw.line([px(-extent, k), px(extent, k)], fill=(230, 230, 225))
    tx, ty = target_xy
    r = success_radius * scale
    cx, cy = px(tx, ty)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(215, 240, 215), outline=(60, 150, 60), width=2)
    draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=(60, 150, 60))
    colours = [(40, 90, 200), (230, 130, 30)]
    if trails:
        for k, colour in ((0, (120, 120, 120)), (1, colours[0]), (2, colours[1])):
            line = [px(*step[k]) for step in trails]
            if len(line) > 1:
                draw.line(line, fill=colour, width=1)
    draw.polygon(corners(box_xy[0], box_xy[1], box_yaw, box_half, box_half), fill=(160, 160, 160), outline=(60, 60, 60))
    bx, by = box_xy
    draw.line(
        [px(bx, by), px(bx + box_half * math.cos(box_yaw), by + box_half * math.sin(box_yaw))],
        fill=(60, 60, 60),
        width=2,
    )
    for (rx, ry), yaw, colour in zip(robots_xy, robots_yaw, colours):
        draw.polygon(corners(rx, ry, yaw, robot_size[0] / 2, robot_size[1] / 2), fill=colour, outline=(20, 20, 20))
        tip = (rx + 0.35 * math.cos(yaw), ry + 0.35 * math.sin(yaw))
        draw.line([px(rx, ry), px(*tip)], fill=(20, 20, 20), width=2)
    return np.asarray(img, dtype=np.uint8)
