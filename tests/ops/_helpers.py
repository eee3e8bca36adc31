"""Small builders shared by the op tests."""
import torch


def off_integer_shift(rows: int, channels: int, *, dtype=torch.float64, device="cpu", span: int = 2):
    """Shifts in (-span, span) whose fractional parts stay in [0.1, 0.9] (away from the kinks)."""
    whole = torch.randint(-span, span, (rows, channels), dtype=dtype)
    frac = 0.1 + 0.8 * torch.rand(rows, channels, dtype=dtype)
    return (whole + frac).to(device)


def shift_by_indexing(x: torch.Tensor, shift: torch.Tensor, stride, padding) -> torch.Tensor:
    """The 3D op for integer shifts, written as plain indexing with zero fill (slow, obvious)."""
    n, t, c, h, w = x.shape
    sizes = [(size + 2 * p - 1) // s + 1 for size, s, p in zip((t, h, w), stride, padding)]
    out = torch.zeros(n, sizes[0], c, sizes[1], sizes[2], dtype=x.dtype)
    for ch in range(c):
        dt, dh, dw = (int(v) for v in shift[:, ch])
        for i in range(sizes[0]):
            ti = i * stride[0] - padding[0] + dt
            if not 0 <= ti < t:
                continue
            for j in range(sizes[1]):
                hj = j * stride[1] - padding[1] + dh
                if not 0 <= hj < h:
                    continue
                for k in range(sizes[2]):
                    wk = k * stride[2] - padding[2] + dw
                    if 0 <= wk < w:
                        out[:, i, ch, j, k] = x[:, ti, ch, hj, wk]
    return out
