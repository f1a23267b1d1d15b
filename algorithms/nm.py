"""N:M structured-sparsity masks and the hardware's compressed N:M format.

All functions here are pure: they take tensors and return new tensors, keep no state,
and run on whatever device their input lives on (in the spirit of Apex's
``sparse_masklib``).

Conventions shared by every function:

- A *group* is a run of ``m`` consecutive elements along ``dim``; groups do not overlap
  and start at index 0, so the size of ``dim`` must be a multiple of ``m``.
- "Largest" means largest absolute value. **Ties: the lower index wins.** Within each
  group elements are ordered by ``|w|`` descending, then by index ascending (the order
  of a stable descending sort), so among equal magnitudes the element that comes first
  along ``dim`` is kept. NaN weights are not supported.
- The compressed format keeps, per group, ``n`` values in increasing index order and
  their ``n`` in-group indices in ``[0, m)`` as ``torch.uint8`` (the hardware stores
  ``log2(m)``-bit indices; ``uint8`` holds any ``m <= 256``).
"""

from __future__ import annotations

import torch

__all__ = [
    "compress",
    "decompress",
    "nm_mask",
    "parse_pattern",
    "transposable_mask",
]


def parse_pattern(pattern: str | tuple[int, int]) -> tuple[int, int]:
    """Parse an N:M sparsity pattern.

    Parameters
    ----------
    pattern : str or tuple of int
        ``"N:M"`` (for example ``"2:8"``), or an ``(n, m)`` tuple which is validated
        and returned as is.

    Returns
    -------
    tuple of int
        ``(n, m)`` with ``1 <= n <= m``.

    Raises
    ------
    ValueError
        If the pattern is not two positive integers separated by ``:`` with ``n <= m``.
    """
    message = f"pattern must be 'N:M' with integers 1 <= N <= M, such as '2:8', not {pattern!r}"
    if isinstance(pattern, tuple):
        parts = pattern
    elif isinstance(pattern, str):
        parts = tuple(pattern.strip().split(":"))
    else:
        raise ValueError(message)
    if len(parts) != 2:
        raise ValueError(message)
    try:
        n, m = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if isinstance(pattern, tuple) and not all(isinstance(p, int) for p in parts):
        raise ValueError(message)
    if isinstance(pattern, str) and not all(str(p).strip().isdigit() for p in parts):
        raise ValueError(message)
    if not 1 <= n <= m:
        raise ValueError(message)
    return n, m


def _check(w: torch.Tensor, n: int, m: int, dim: int, name: str) -> int:
    """Validate arguments shared by the mask functions and return ``dim`` normalised."""
    pattern = f"{n}:{m}"
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        dtype = w.dtype if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"{name}: w must be a floating-point tensor, not {dtype}")
    if not (isinstance(n, int) and isinstance(m, int)) or not 1 <= n <= m:
        raise ValueError(f"{name}: pattern {pattern} needs integers 1 <= n <= m")
    if w.ndim == 0:
        raise ValueError(f"{name}: w of shape {tuple(w.shape)} has no dimension to group")
    if not -w.ndim <= dim < w.ndim:
        raise ValueError(f"{name}: dim {dim} is out of range for shape {tuple(w.shape)}")
    dim = dim % w.ndim
    if w.shape[dim] % m:
        raise ValueError(
            f"{name}: size {w.shape[dim]} of dim {dim} in shape {tuple(w.shape)} "
            f"is not divisible by m={m} (pattern {pattern})"
        )
    return dim


def _topn_indices(groups: torch.Tensor, n: int) -> torch.Tensor:
    """In-group indices of the ``n`` largest ``|x|`` of each row, lower index on ties.

    For float32 and narrower inputs the magnitude's bit pattern (order-preserving for
    non-negative floats) is combined with the reversed index into a unique integer key,
    so a plain ``topk`` (whose tie order is unspecified) selects exactly the right set,
    about twice as fast as a stable sort. Wider dtypes use a stable sort.
    """
    a = groups.abs()
    m = a.shape[-1]
    if a.dtype in (torch.float16, torch.bfloat16, torch.float32):
        rank = torch.arange(m - 1, -1, -1, device=a.device)
        key = a.float().view(torch.int32).long() * m + rank
        return key.topk(n, dim=-1, sorted=False).indices
    return torch.sort(a, dim=-1, descending=True, stable=True).indices[..., :n]


def nm_mask(w: torch.Tensor, n: int, m: int, dim: int = -1) -> torch.Tensor:
    """Keep the ``n`` largest-magnitude elements of every group of ``m`` along ``dim``.

    Parameters
    ----------
    w : torch.Tensor
        Floating-point tensor of any shape; ``w.shape[dim]`` must be a multiple of ``m``.
    n, m : int
        The pattern: ``n`` kept out of every ``m``, ``1 <= n <= m``.
    dim : int, default -1
        The axis along which groups are formed. For a weight used in ``x @ w.T`` this is
        the reduction axis, i.e. ``dim=-1`` (in-features) for the forward GEMM.

    Returns
    -------
    torch.Tensor
        Boolean tensor shaped like ``w`` with exactly ``n`` ``True`` per group. Ties on
        ``|w|`` keep the lower index.

    Raises
    ------
    ValueError
        If ``w`` is not floating point, ``not 1 <= n <= m``, or ``w.shape[dim]`` is not a
        multiple of ``m``; the message names the shape and the pattern.
    """
    dim = _check(w, n, m, dim, "nm_mask")
    moved = w.detach().movedim(dim, -1)
    groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
    keep = torch.zeros(groups.shape, dtype=torch.bool, device=w.device)
    keep.scatter_(-1, _topn_indices(groups, n), True)
    return keep.reshape(moved.shape).movedim(-1, dim)


def compress(w: torch.Tensor, n: int, m: int, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Compress ``w`` to the N:M format the hardware streams.

    Each group of ``m`` along ``dim`` becomes ``n`` values (in increasing index order)
    and their ``n`` in-group indices. The kept elements are those of
    ``nm_mask(w, n, m, dim)``, so any tensor with at most ``n`` nonzeros per group
    round-trips exactly:
    ``decompress(*compress(w * mask, n, m), m, n=n) == w * mask``.

    Parameters
    ----------
    w : torch.Tensor
        Floating-point tensor; ``w.shape[dim]`` a multiple of ``m``, ``m <= 256``.
    n, m : int
        The pattern.
    dim : int, default -1
        The grouped axis.

    Returns
    -------
    values : torch.Tensor
        Same dtype as ``w``; shape of ``w`` with ``dim`` shrunk from ``K`` to ``K*n/m``.
    indices : torch.Tensor
        ``torch.uint8``, same shape as ``values``, each in ``[0, m)``, increasing within
        a group.

    Raises
    ------
    ValueError
        As :func:`nm_mask`, and if ``m > 256``.
    """
    dim = _check(w, n, m, dim, "compress")
    if m > 256:
        raise ValueError(f"compress: m={m} does not fit the uint8 index format (m <= 256)")
    moved = w.movedim(dim, -1)
    groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
    idx = torch.sort(_topn_indices(groups.detach(), n), dim=-1).values
    values = torch.gather(groups, -1, idx)
    out_shape = (*moved.shape[:-1], moved.shape[-1] // m * n)
    values = values.reshape(out_shape).movedim(-1, dim)
    indices = idx.to(torch.uint8).reshape(out_shape).movedim(-1, dim)
    return values, indices


def decompress(
    values: torch.Tensor, indices: torch.Tensor, m: int, dim: int = -1, *, n: int
) -> torch.Tensor:
    """Expand the N:M compressed format of :func:`compress` back to a dense tensor.

    Parameters
    ----------
    values : torch.Tensor
        Kept values, ``n`` per group along ``dim``.
    indices : torch.Tensor
        Integer tensor shaped like ``values``: in-group positions in ``[0, m)``.
    m : int
        Group size of the pattern.
    dim : int, default -1
        The grouped axis.
    n : int
        Kept values per group (keyword-only and required: ``n`` cannot be recovered
        from the compressed tensors, since ``[0, 1], [2, 3]`` at 2:8 reads equally well
        as one 4:8 group).

    Returns
    -------
    torch.Tensor
        Dense tensor, ``dim`` of size ``values.shape[dim] * m / n``, zeros elsewhere.

    Raises
    ------
    ValueError
        If shapes differ, indices are not integers or fall outside ``[0, m)``, or
        ``values.shape[dim]`` is not a multiple of ``n``.
    """
    if values.shape != indices.shape:
        raise ValueError(
            f"decompress: values shape {tuple(values.shape)} differs from indices shape "
            f"{tuple(indices.shape)}"
        )
    if indices.is_floating_point() or indices.dtype == torch.bool:
        raise ValueError(f"decompress: indices must be an integer tensor, not {indices.dtype}")
    if not (isinstance(n, int) and isinstance(m, int)) or not 1 <= n <= m:
        raise ValueError(f"decompress: pattern {n}:{m} needs integers 1 <= n <= m")
    if values.ndim == 0 or not -values.ndim <= dim < values.ndim:
        raise ValueError(f"decompress: dim {dim} is out of range for shape {tuple(values.shape)}")
    if values.shape[dim] % n:
        raise ValueError(
            f"decompress: size {values.shape[dim]} of dim {dim % values.ndim} in shape "
            f"{tuple(values.shape)} is not divisible by n={n} (pattern {n}:{m})"
        )
    idx = indices.long()
    if idx.numel() and (idx.min() < 0 or idx.max() >= m):
        raise ValueError(f"decompress: indices must lie in [0, {m}) (pattern {n}:{m})")
    v = values.movedim(dim, -1)
    i = idx.movedim(dim, -1)
    groups = v.shape[-1] // n
    dense = torch.zeros((*v.shape[:-1], groups, m), dtype=values.dtype, device=values.device)
    dense.scatter_(-1, i.reshape(*i.shape[:-1], groups, n), v.reshape(*v.shape[:-1], groups, n))
    return dense.reshape(*v.shape[:-1], groups * m).movedim(-1, dim)


def transposable_mask(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """One mask that is N:M along both rows and columns of every ``m x m`` block.

    Method: greedy by magnitude, then completed by augmenting paths. Inside each block
    the ``m*m`` entries are visited in decreasing ``|w|`` (stable, so ties go to the
    lower row-major index) and an entry is kept if its row and its column both hold
    fewer than ``n`` kept entries. Greedy can stall below ``n`` per row; such blocks
    are completed with shortest augmenting paths of the bipartite row/column b-matching
    (the complete bipartite graph always has an ``n``-regular subgraph), so every row
    and every column of every block ends with exactly ``n`` kept. Greedy is not
    optimal in kept magnitude (Hubara et al. also give a min-cost-flow solver).

    Parameters
    ----------
    w : torch.Tensor
        Floating-point tensor with ``ndim >= 2``; the last two dims are the matrix and
        both must be multiples of ``m``. Leading dims are independent matrices (a conv
        weight permuted to ``(kh, kw, C_out, C_in)``, for example).
    n, m : int
        The pattern.

    Returns
    -------
    torch.Tensor
        Boolean mask shaped like ``w``: ``n`` kept in every group of ``m`` along the last
        dim and along the second-to-last dim.

    Raises
    ------
    ValueError
        If ``w`` is not floating point, has fewer than two dims, ``not 1 <= n <= m``, or a
        matrix dim is not a multiple of ``m``.
    """
    if isinstance(w, torch.Tensor) and w.ndim < 2:
        raise ValueError(
            f"transposable_mask: w of shape {tuple(w.shape)} needs at least 2 dims "
            f"(pattern {n}:{m})"
        )
    _check(w, n, m, -1, "transposable_mask")
    _check(w, n, m, -2, "transposable_mask")
    *lead, rows, cols = w.shape
    # blocks: (B, m*m) in row-major order inside each block
    blocks = (
        w.detach()
        .abs()
        .reshape(-1, rows // m, m, cols // m, m)
        .permute(0, 1, 3, 2, 4)
        .reshape(-1, m * m)
    )
    nb = blocks.shape[0]
    order = torch.sort(blocks, dim=-1, descending=True, stable=True).indices
    keep = torch.zeros(nb, m * m, dtype=torch.bool, device=w.device)
    row_count = torch.zeros(nb, m, dtype=torch.long, device=w.device)
    col_count = torch.zeros(nb, m, dtype=torch.long, device=w.device)
    ar = torch.arange(nb, device=w.device)
    for step in range(m * m):
        pos = order[:, step]
        r, c = pos // m, pos % m
        ok = (row_count[ar, r] < n) & (col_count[ar, c] < n)
        keep[ar, pos] |= ok
        row_count[ar, r] += ok
        col_count[ar, c] += ok
    stalled = (row_count < n).any(dim=1).nonzero().flatten().tolist()
    for b in stalled:
        keep[b] = _complete_block(keep[b].reshape(m, m).cpu(), n).to(w.device)
    out = keep.reshape(-1, rows // m, cols // m, m, m).permute(0, 1, 3, 2, 4)
    return out.reshape(*lead, rows, cols)


def _complete_block(keep: torch.Tensor, n: int) -> torch.Tensor:
    """Raise a greedy b-matching of one block to ``n`` per row and column.

    Breadth-first search from a deficient row over unkept edges (row to column) and kept
    edges (column back to row) until a column with spare capacity is reached; flipping
    the path adds one entry to the deficient row and to that column and leaves all
    other degrees unchanged.
    """
    k = keep.clone().tolist()
    m = len(k)
    while True:
        deficit = [r for r in range(m) if sum(k[r]) < n]
        if not deficit:
            break
        start = deficit[0]
        parent: dict[tuple[str, int], tuple[str, int] | None] = {("r", start): None}
        frontier = [("r", start)]
        end = None
        while frontier and end is None:
            nxt = []
            for kind, i in frontier:
                if kind == "r":
                    for c in range(m):
                        if not k[i][c] and ("c", c) not in parent:
                            parent[("c", c)] = ("r", i)
                            if sum(k[r][c] for r in range(m)) < n:
                                end = ("c", c)
                                break
                            nxt.append(("c", c))
                else:
                    for r in range(m):
                        if k[r][i] and ("r", r) not in parent:
                            parent[("r", r)] = ("c", i)
                            nxt.append(("r", r))
                if end is not None:
                    break
            frontier = nxt
        if end is None:  # pragma: no cover - an n-regular subgraph of K_{m,m} always exists
            raise RuntimeError("transposable_mask: no augmenting path")
        node = end
        while parent[node] is not None:
            prev = parent[node]
            r, c = (prev[1], node[1]) if node[0] == "c" else (node[1], prev[1])
            k[r][c] = not k[r][c]
            node = prev
    return torch.tensor(k, dtype=torch.bool).flatten()
