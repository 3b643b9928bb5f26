"""The default tissue detector, ``saturation``: HSV saturation threshold (CLAM's), with marker ink removed by colour.

Ink is told from stain by which colour the pixel takes away from white glass. Seen through white light, both eosin
(pink) and hematoxylin (purple) absorb green most, which is why stained tissue looks pink to purple; blue, green and
black markers all absorb red at least as much as green. Glass mixed into a pixel at a stroke's or a piece's edge only
scales that absorption (``white - rgb``), it does not turn it, so faint stroke edges on glass class as ink too.
"""

from __future__ import annotations

import cv2
import numpy as np

from mosare.slides.tissue import Segmentation, TissueDetector, TissueMask, register_tissue_detector

# Absorbed red / absorbed green at and above which a pixel is ink. H&E stays below ~0.9 (99.9th percentile of
# real H&E pixels: 0.87-0.94); black ink sits at ~1.0, blue and green inks above it.
INK_RED_TO_GREEN = 0.9
INK_MIN_ABSORPTION = 25  # absorbed 8-bit value below which a pixel is too faint to call (glass noise)
NEAR_BLACK_VALUE = 50  # HSV value below which a pixel is dust, a fold's core or ink, not countable tissue
# A marker stroke 50 µm wide and 0.4 mm long; smaller ink-coloured pieces are debris (keratin, pigment) on tissue.
MIN_STROKE_AREA_UM2 = 20_000.0
# Dark ink over tissue takes some of the stain's colour and falls below the ink ratio in places, breaking a stroke
# into pieces; pieces this close count as one stroke for the area above (on real H&E, ink-coloured debris linked
# this way stays under 3% of a stroke's area: benchmarks/bench_tissue_accuracy.py's slides).
STROKE_GAP_UM = 40.0
SPECK_KERNEL = np.ones((3, 3), np.uint8)  # ink narrower than this is a colour fringe at a tissue edge, not a stroke
INK_MARGIN_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
FINE_MEDIAN_BLUR = 3  # px at fraction_mpp: removes JPEG noise, keeps edges within a pixel


def ink_mask(rgb: np.ndarray, hsv: np.ndarray, min_stroke_px: float = 0.0, stroke_gap_px: int = 0) -> np.ndarray:
    """Pixels of blue, green or black marker ink (and near-black ones), widened over a stroke's blended edge.

    Ink pieces smaller than ``min_stroke_px`` (after the speck filter; pieces within ``stroke_gap_px`` of each
    other counted together) are left alone: they are stained debris or colour fringes on tissue, not marker strokes.
    """
    red, green, blue = cv2.split(rgb)
    strong = cv2.min(cv2.min(red, green), blue) <= 255 - INK_MIN_ABSORPTION
    absorbs_red = (255 - red.astype(np.int16)) >= INK_RED_TO_GREEN * (255 - green.astype(np.int16))
    ink_pixels = (strong & absorbs_red) | (hsv[..., 2] < NEAR_BLACK_VALUE)
    # Chromatic fringes along real tissue edges are a pixel or two wide; strokes are wider.
    ink = cv2.morphologyEx(ink_pixels.astype(np.uint8), cv2.MORPH_OPEN, SPECK_KERNEL)
    if min_stroke_px > 0:
        linked = cv2.dilate(ink, np.ones((stroke_gap_px + 1, stroke_gap_px + 1), np.uint8)) if stroke_gap_px else ink
        count, labels = cv2.connectedComponents(linked, connectivity=8)
        keep = np.bincount(labels[ink > 0], minlength=count) >= min_stroke_px
        keep[0] = False
        ink = (keep[labels] & (ink > 0)).astype(np.uint8)
    return cv2.dilate(ink, INK_MARGIN_KERNEL) > 0


def _close(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological closing with a size x size square that does not shift the mask.

    cv2.MORPH_CLOSE with an even kernel (CLAM's 4) moves the mask one pixel down-right, i.e. 8 µm per
    detection pixel; eroding with the mirrored anchor cancels the dilation's offset.
    """
    if size <= 0:
        return mask
    kernel = np.ones((size, size), np.uint8)
    anchor = size // 2
    dilated = cv2.dilate(mask.astype(np.uint8), kernel, anchor=(anchor, anchor))
    mirrored = size - 1 - anchor
    return cv2.erode(dilated, kernel, anchor=(mirrored, mirrored)) > 0


@register_tissue_detector
class SaturationDetector(TissueDetector):
    """Median-blurred HSV saturation above a fixed or Otsu threshold, closed, minus marker ink."""

    name = "saturation"

    def _threshold(self, saturation: np.ndarray, threshold: float | None) -> tuple[float, np.ndarray]:
        if threshold is None:
            value, binary = cv2.threshold(saturation, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        else:
            value, binary = cv2.threshold(saturation, threshold, 255, cv2.THRESH_BINARY)
        return float(value), binary > 0

    def _classify(
        self, hsv: np.ndarray, median_blur: int, closing: int, threshold: float | None, ink: np.ndarray
    ) -> Segmentation:
        saturation = cv2.medianBlur(np.ascontiguousarray(hsv[..., 1]), median_blur)
        threshold_used, stained = self._threshold(saturation, threshold)
        tissue = _close(stained & ~ink, closing) & ~ink
        return Segmentation(tissue, ink, stained, threshold_used)

    def segment(self, rgb: np.ndarray, mpp: float) -> Segmentation:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        ink = (
            ink_mask(rgb, hsv, MIN_STROKE_AREA_UM2 / mpp**2, round(STROKE_GAP_UM / mpp))
            if self.params.exclude_pen
            else np.zeros(rgb.shape[:2], bool)
        )
        return self._classify(hsv, self.params.median_blur, self.params.closing, self.params.saturation_threshold, ink)

    def fine_tissue(self, rgb: np.ndarray, mpp: float, coarse: TissueMask, near_ink: np.ndarray) -> np.ndarray:
        """The same classification at the fine mpp, with a light blur, a closing of the same width in pixels and
        ``fraction_saturation_threshold`` (null: the coarse pass's, e.g. Otsu's chosen on the whole slide). Ink is
        looked for only next to the strokes found on the coarse pass: at 2 µm/px single nuclei are near-black and
        debris ink-coloured."""
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        ink = ink_mask(rgb, hsv) & near_ink
        threshold = self.params.fraction_saturation_threshold
        return self._classify(
            hsv, FINE_MEDIAN_BLUR, self.params.closing, coarse.threshold if threshold is None else threshold, ink
        ).tissue
