"""Training batches made on the training device: the whole training set as one uint8 tensor
there, augmentation done there on whole batches (``vidaffect train --device cuda``).

A CPU ``DataLoader`` that decodes and augments face by face cannot keep a GPU busy on 48x48
faces: a step of a small network takes well under a millisecond. Here a step costs a few
batched tensor operations on the device and no copy from the host.

Augmentation matches :class:`~vidaffect_trainers.fer2013.augment.FaceTensorDataset` in kind:
a random affine map (rotation up to 10 degrees, shift up to 10%, scale 0.9-1.1, zero fill),
a horizontal flip, brightness and contrast factors in 0.7-1.3, random erasing (probability
0.5, 2-15% of the face; Zhong et al., AAAI 2020), and with ``robust`` > 0 one camera
corruption per face with that probability, from the families and ranges of
:mod:`vidaffect_trainers.fer2013.corrupt` (JPEG through OpenCV on the host, for the few faces
that draw it). With ``framing`` > 0 and ``boxes``, first, with that probability, the crop the
``fer`` plugin takes around the face's own MTCNN box
(:func:`~vidaffect_trainers.fer2013.framing.random_framing`, border repeated).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vidaffect_trainers.fer2013.corrupt import FAMILIES, RANGES
from vidaffect_trainers.fer2013.corrupt import _jpeg as _jpeg_op
from vidaffect_trainers.fer2013.framing import MARGIN_RANGE, OFFSET_RANGE


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda``/``cpu`` as given.

    Raises:
        ValueError: ``cuda`` asked for where PyTorch sees no GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: PyTorch sees no GPU here (use --device cpu or auto)")
    return torch.device(name)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _jpeg_cv(img: np.ndarray, quality: float) -> np.ndarray:
    return _jpeg_op(img, quality, np.random.default_rng(0))


def _affine_grid(theta: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.affine_grid(theta, list(size), align_corners=False)


def _rotation_scale_shift(
    angle: torch.Tensor, scale: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    """Sampling matrices ``(n, 2, 3)`` in normalised coordinates (output -> input)."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    return theta


class DeviceBatches:
    """Iterates ``(x, y)`` or ``(x, y, soft)`` training batches built on ``device``.

    Args:
        images: uint8 ``(N, H, W)`` faces; labels: int64 ``(N,)``; soft: float32 ``(N, C)``
            teacher targets or None.
        mean, std: the normalisation ``(x / 255 - mean) / std``.
        batch_size: faces per batch; the last, smaller batch is dropped when ``drop_last``.
        robust: probability of one camera corruption per face (0: none).
        boxes, framing: float32 ``(N, 4)`` MTCNN boxes relative to each face (NaN: none
            found) and the probability of the plugin's crop around them (0: none).
        seed: the shuffling and augmentation seed (a run is repeatable on one device).
        views: 1, or 3 for consistency training (as
            :class:`~vidaffect_trainers.fer2013.augment.FaceTensorDataset`: the face as above,
            then two copies with one corruption each, always; one draw of framing, geometry
            and colour for the three, random erasing per copy).

    ``x`` is float32 ``(B, 1, H, W)`` on ``device`` (``(B, 3, 1, H, W)`` with three views); the
    generator's state advances per epoch.

    Raises:
        ValueError: ``views`` other than 1 or 3.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean: float,
        std: float,
        batch_size: int,
        device: torch.device,
        soft: np.ndarray | None = None,
        robust: float = 0.0,
        seed: int = 0,
        drop_last: bool = True,
        robust_ranges: str = "standard",
        boxes: np.ndarray | None = None,
        framing: float = 0.0,
        views: int = 1,
    ) -> None:
        if views not in (1, 3):
            raise ValueError(f"views must be 1 or 3, got {views}")
        self.views = views
        self.device = device
        self.boxes = None if boxes is None else torch.from_numpy(np.asarray(boxes, np.float32)).to(device)
        self.framing = framing if boxes is not None else 0.0
        self.ranges = RANGES[robust_ranges]
        self.images = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).to(device)
        self.labels = torch.from_numpy(labels).to(device)
        self.soft = (
            None if soft is None else torch.from_numpy(np.ascontiguousarray(soft, np.float32)).to(device)
        )
        self.mean, self.std, self.batch_size = mean, std, batch_size
        self.robust, self.drop_last = robust, drop_last
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.labels)
        return (
            n // self.batch_size
            if self.drop_last and n >= self.batch_size
            else math.ceil(n / self.batch_size)
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.randperm(len(self.labels), generator=self.gen, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[idx].float() / 255.0
            if self.framing:
                assert self.boxes is not None
                x = self.frame(x, self.boxes[idx])
            x = self.augment(x) if self.views == 1 else self.consistency_views(x)
            batch: tuple[torch.Tensor, ...] = (x, self.labels[idx])
            yield batch if self.soft is None else (*batch, self.soft[idx])

    # -- augmentation -------------------------------------------------------------------------
    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """float ``(B, 1, H, W)`` in [0, 1] -> augmented and normalised float32."""
        if self.robust:
            x = self.corrupt(x)
        return self.erase(self._geometry_colour(x, 1))

    def consistency_views(self, x: torch.Tensor) -> torch.Tensor:
        """float ``(B, 1, H, W)`` in [0, 1] -> float32 ``(B, 3, 1, H, W)``: three views of each
        face (see the class), augmented and normalised."""
        first = self.corrupt(x) if self.robust else x
        views = torch.cat([first, self.corrupt(x, 1.0), self.corrupt(x, 1.0)])  # view-major
        views = self.erase(self._geometry_colour(views, 3))
        return views.view(3, len(x), *x.shape[1:]).transpose(0, 1)

    def _geometry_colour(self, x: torch.Tensor, repeat: int) -> torch.Tensor:
        """The random affine map, flip, brightness and contrast, then the normalisation; one
        draw per face, the same for its ``repeat`` view-major copies in ``x``."""
        g, dev, n = self.gen, self.device, len(x) // repeat
        angle = _uniform(n, -10, 10, g, dev) * math.pi / 180
        flip = torch.where(torch.rand(n, generator=g, device=dev) < 0.5, -1.0, 1.0)
        theta = _rotation_scale_shift(
            angle,
            _uniform(n, 0.9, 1.1, g, dev),
            _uniform(n, -0.2, 0.2, g, dev),
            _uniform(n, -0.2, 0.2, g, dev),
            flip,
        ).repeat(repeat, 1, 1)
        x = F.grid_sample(x, _affine_grid(theta, x.shape), align_corners=False, padding_mode="zeros")
        b = _uniform(n, 0.7, 1.3, g, dev).repeat(repeat).view(-1, 1, 1, 1)
        c = _uniform(n, 0.7, 1.3, g, dev).repeat(repeat).view(-1, 1, 1, 1)
        x = (x * b).clamp(0, 1)
        m = x.mean((1, 2, 3), keepdim=True)
        x = (m + c * (x - m)).clamp(0, 1)
        return (x - self.mean) / self.std

    def frame(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """With probability ``framing`` per face with a box, the square around it grown by a
        margin from :data:`~vidaffect_trainers.fer2013.framing.MARGIN_RANGE` and moved down by
        a share of its side from :data:`~vidaffect_trainers.fer2013.framing.OFFSET_RANGE`."""
        g, dev, n = self.gen, self.device, len(x)
        on = (torch.rand(n, generator=g, device=dev) < self.framing) & torch.isfinite(boxes).all(1)
        b = torch.nan_to_num(boxes, 0.0)
        side = torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).clamp_min(0.05)
        grown = side * (1 + 2 * _uniform(n, *MARGIN_RANGE, g, dev))
        cx = (b[:, 0] + b[:, 2]) / 2
        cy = (b[:, 1] + b[:, 3]) / 2 + _uniform(n, *OFFSET_RANGE, g, dev) * side
        zeros = torch.zeros(n, device=dev)
        theta = torch.stack(  # output [-1, 1] -> the grown square, in the face's [-1, 1] frame
            [torch.stack([grown, zeros, 2 * cx - 1], 1), torch.stack([zeros, grown, 2 * cy - 1], 1)], 1
        )
        framed = F.grid_sample(x, _affine_grid(theta, x.shape), align_corners=False, padding_mode="border")
        return torch.where(on.view(-1, 1, 1, 1), framed, x)

    def erase(self, x: torch.Tensor) -> torch.Tensor:
        """Random erasing: with probability 0.5 a rectangle of 2-15% of the face (aspect 0.3-3.3)
        set to 0 (the normalised mean)."""
        g, dev, (n, _, h, w) = self.gen, self.device, x.shape
        area = _uniform(n, 0.02, 0.15, g, dev) * h * w
        aspect = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), g, dev))
        eh = (area * aspect).sqrt().clamp(1, h)
        ew = (area / aspect).sqrt().clamp(1, w)
        y0 = torch.rand(n, generator=g, device=dev) * (h - eh)
        x0 = torch.rand(n, generator=g, device=dev) * (w - ew)
        on = torch.rand(n, generator=g, device=dev) < 0.5
        return x.masked_fill(self._box_mask(y0, x0, eh, ew, h, w) & on.view(-1, 1, 1, 1), 0.0)

    def _box_mask(
        self, y0: torch.Tensor, x0: torch.Tensor, bh: torch.Tensor, bw: torch.Tensor, h: int, w: int
    ) -> torch.Tensor:
        ys = torch.arange(h, device=self.device).view(1, 1, h, 1)
        xs = torch.arange(w, device=self.device).view(1, 1, 1, w)
        v = lambda t: t.view(-1, 1, 1, 1)  # noqa: E731
        return (ys >= v(y0)) & (ys < v(y0 + bh)) & (xs >= v(x0)) & (xs < v(x0 + bw))

    def corrupt(self, x: torch.Tensor, p: float | None = None) -> torch.Tensor:
        """With probability ``p`` (default ``robust``) per face, one family at a strength drawn
        from the chosen :data:`~vidaffect_trainers.fer2013.corrupt.RANGES`."""
        g, dev, n = self.gen, self.device, len(x)
        chosen = torch.rand(n, generator=g, device=dev) < (self.robust if p is None else p)
        family = torch.randint(len(FAMILIES), (n,), generator=g, device=dev)
        x = x.clone()
        for k, name in enumerate(FAMILIES):
            idx = torch.nonzero(chosen & (family == k)).flatten()
            if len(idx):
                lo, hi = self.ranges[name]
                x[idx] = getattr(self, f"_{name}")(x[idx], _uniform(len(idx), lo, hi, g, dev)).clamp(0, 1)
        return x

    def _dark(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(0) ** gamma.view(-1, 1, 1, 1)

    def _low_contrast(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        m = x.mean((1, 2, 3), keepdim=True)
        return m + c.view(-1, 1, 1, 1) * (x - m)

    def _blur(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        r = 4
        t = torch.arange(-r, r + 1, device=self.device, dtype=x.dtype)
        k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
        k = (k / k.sum(1, keepdim=True)).to(x.dtype)  # (n, 2r+1), one kernel per face
        n, _, h, w = x.shape
        y = F.pad(x.view(1, n, h, w), (r, r, 0, 0), mode="reflect")
        y = F.conv2d(y, k.view(n, 1, 1, -1), groups=n)
        y = F.pad(y, (0, 0, r, r), mode="reflect")
        return F.conv2d(y, k.view(n, 1, -1, 1), groups=n).view(n, 1, h, w)

    def _small(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        sides = side.round().int()
        for s in sides.unique().tolist():
            sel = torch.nonzero(sides == s).flatten()
            down = F.interpolate(x[sel], size=(s, s), mode="area")
            out[sel] = F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out

    def _jpeg(self, x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """Through OpenCV's JPEG codec on the host, face by face (a few faces per batch: a
        tenth of the corrupted ones); torchvision's image codecs are deprecated."""
        u8 = (x[:, 0] * 255).round().to(torch.uint8).cpu().numpy()
        out = [_jpeg_cv(img, float(q)) for img, q in zip(u8, quality.tolist())]
        return torch.from_numpy(np.stack(out)).to(x.device).unsqueeze(1).float() / 255.0

    def _noise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=self.gen, device=self.device, dtype=x.dtype)
        return x + noise * (sigma.view(-1, 1, 1, 1) / 255.0)

    def _rotate(self, x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
        n = len(x)
        sign = torch.where(torch.rand(n, generator=self.gen, device=self.device) < 0.5, -1.0, 1.0)
        ones, zeros = torch.ones(n, device=self.device), torch.zeros(n, device=self.device)
        theta = _rotation_scale_shift(sign * degrees * math.pi / 180, ones, zeros, zeros, ones)
        return F.grid_sample(x, _affine_grid(theta, x.shape), align_corners=False, padding_mode="reflection")

    def _turn(self, x: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        """One vertical edge shrunk by ``share`` and pulled in by half of it (a homography,
        as :func:`~vidaffect_trainers.fer2013.corrupt._turn`)."""
        n, dev = len(x), self.device
        right = torch.rand(n, generator=self.gen, device=dev) < 0.5
        # normalised corners (x, y) of the output square, and where each samples the input
        dst = (
            torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=dev)
            .expand(n, 4, 2)
            .clone()
        )
        src = dst.clone()
        d, s = share, share  # vertical shrink (each end) and inward pull, in half-sides
        side_x = torch.where(right, 1.0, -1.0)
        # the moved edge: right corners 1, 2 or left corners 0, 3; the image is squeezed there,
        # so the output corner samples outside the input (points beyond the original edge)
        for c_right, c_left, sy in ((1, 0, -1.0), (2, 3, 1.0)):
            c = torch.where(right, c_right, c_left)
            rows = torch.arange(n, device=dev)
            src[rows, c, 0] = side_x * (1 + s)
            src[rows, c, 1] = sy * (1 + d)
        return F.grid_sample(
            x, _homography_grid(dst, src, x.shape), align_corners=False, padding_mode="reflection"
        )

    def _jitter(self, x: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        n, g, dev = len(x), self.gen, self.device
        shift = (torch.rand((n, 2), generator=g, device=dev) * 2 - 1) * share.view(-1, 1) * 2
        scale = 1 + (torch.rand(n, generator=g, device=dev) * 2 - 1) * share
        zeros, ones = torch.zeros(n, device=dev), torch.ones(n, device=dev)
        theta = _rotation_scale_shift(zeros, scale, shift[:, 0], shift[:, 1], ones)
        return F.grid_sample(x, _affine_grid(theta, x.shape), align_corners=False, padding_mode="reflection")

    def _occlude(self, x: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        n, (h, w), g, dev = len(x), x.shape[-2:], self.gen, self.device
        area = share * h * w
        aspect = _uniform(n, 0.5, 2.0, g, dev)
        ph = (area * aspect).sqrt().clamp(1, h)
        pw = (area / ph).clamp(1, w)
        y0 = torch.rand(n, generator=g, device=dev) * (h - ph)
        x0 = torch.rand(n, generator=g, device=dev) * (w - pw)
        value = torch.rand(n, generator=g, device=dev).view(-1, 1, 1, 1)
        mask = self._box_mask(y0, x0, ph, pw, h, w)
        return torch.where(mask, value.expand_as(x), x)


def _homography_grid(dst: torch.Tensor, src: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """A sampling grid ``(n, H, W, 2)`` for the homographies mapping the 4 ``dst`` corners onto
    the 4 ``src`` corners (normalised coordinates, ``(n, 4, 2)`` each)."""
    n = len(dst)
    rows = []
    for i in range(4):
        x, y = dst[:, i, 0], dst[:, i, 1]
        u, v = src[:, i, 0], src[:, i, 1]
        zero, one = torch.zeros_like(x), torch.ones_like(x)
        rows.append(torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], 1))
        rows.append(torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], 1))
    a = torch.stack(rows, 1)
    b = src.reshape(n, 8)
    h = torch.linalg.solve(a, b)
    hm = torch.cat([h, torch.ones(n, 1, device=h.device, dtype=h.dtype)], 1).view(n, 3, 3)
    base = _affine_grid(torch.eye(2, 3, device=h.device, dtype=h.dtype).expand(n, 2, 3), size)
    pts = torch.cat([base, torch.ones_like(base[..., :1])], -1)  # (n, H, W, 3)
    mapped = torch.einsum("nij,nhwj->nhwi", hm, pts)
    return mapped[..., :2] / mapped[..., 2:3]
