"""Reading and checking crystal structures (POSCAR) before any work is done with them.

:func:`check_poscar` needs only numpy (the CLI checks many files before submitting, and importing
ASE costs ~0.3 s); :func:`parse_poscar` checks first and then builds ASE Atoms, so malformed
input never reaches ASE. Every failure is a :class:`StructureError` with a one-line message that
says what is wrong, where (POSCAR line number) and how to fix it.
"""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_INPUT_BYTES = 5_000_000
MAX_ATOMS = 100_000
LARGE_STRUCTURE_ATOMS = 2000  # the CLI warns above this: EMT relaxations get slow
MIN_DISTANCE = 0.5  # Å; closer atoms mean duplicated lines or a wrong scale/Direct/Cartesian

# Real elements only (ASE's dummy "X" is not one), H..Og.
ELEMENTS = frozenset([
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
    "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
    "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
    "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
    "Fl", "Mc", "Lv", "Ts", "Og"
])
_BY_LOWER = {symbol.lower(): symbol for symbol in ELEMENTS}
_COUNTS_LINE = 7  # 1-based line numbers of a VASP 5 POSCAR's fixed header
_FIRST_SEARCH_CUTOFF = 3.0  # Å; nearly every real structure has a pair closer than this


class StructureError(ValueError):
    """The structure cannot be used: the message says why and what to do."""


@dataclass(frozen=True)
class StructureSummary:
    natoms: int
    formula: str  # as ase's Atoms.get_chemical_formula() (mode "hill": C, H, then A-Z)
    elements: tuple[str, ...]  # in formula order
    volume: float  # Å^3
    # Smallest distance between two atoms, or an atom and its own image, under periodic
    # boundaries; a number for every structure that passes (kept Optional for callers).
    min_distance: float | None


@dataclass(frozen=True)
class _Parsed:
    """What ASE's POSCAR reader would compute, in the same arithmetic, for building Atoms."""

    scale: np.ndarray  # shape (1,) or (3,), after turning a negative one into a volume
    cell: np.ndarray
    raw_positions: np.ndarray  # as written: fractional, or Cartesian before scaling
    cartesian: bool
    symbols: list[str]
    fixed: np.ndarray | None  # selective dynamics: True where the flag is F
    line_of_atom: int  # 1-based line of atom 1


# --- files -----------------------------------------------------------------------------------


def read_input_file(path: str | Path) -> str:
    """The text of an input file, or StructureError naming what the path is instead."""
    path = Path(path)
    try:
        if path.is_dir():
            raise StructureError("is a directory; pass the files in it, or a glob")
        if not path.exists():
            raise StructureError("no such file")
        if not path.is_file():  # a FIFO or device could block or never end
            raise StructureError("not a regular file; expected a POSCAR")
        with path.open("rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)  # bounded even if the size lies (/proc)
    except PermissionError:
        raise StructureError("permission denied; make the file readable") from None
    except OSError as error:
        raise StructureError(f"cannot read it ({error.strerror or type(error).__name__})") from None
    if len(data) > MAX_INPUT_BYTES:
        raise StructureError(f"larger than {MAX_INPUT_BYTES // 1_000_000} MB; not a POSCAR")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StructureError("not a text file; expected a POSCAR") from None
    if "\x00" in text:
        raise StructureError("not a text file; expected a POSCAR")
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as Path.read_text() would


# --- the checker -----------------------------------------------------------------------------


def check_poscar(
    text: str,
    supported_elements: frozenset[str] | None = None,
    *,
    min_distance: float = MIN_DISTANCE,
) -> StructureSummary:
    """Check POSCAR text without ASE; StructureError with a one-line message if unusable."""
    return _check(text, supported_elements, min_distance)[1]


def _check(text, supported_elements, min_distance) -> tuple[_Parsed, StructureSummary]:
    parsed = _parse(text, supported_elements)
    volume = abs(float(np.linalg.det(parsed.cell)))
    if parsed.cartesian:
        cartesian = parsed.raw_positions * parsed.scale
        fractional = np.linalg.solve(parsed.cell.T, cartesian.T).T
    else:
        fractional = parsed.raw_positions
    distance, i, j = _closest_pair(parsed.cell, fractional)
    if distance < min_distance:
        raise StructureError(_too_close(parsed, distance, i, j, min_distance))
    formula, elements = _formula(parsed.symbols)
    summary = StructureSummary(
        natoms=len(parsed.symbols), formula=formula, elements=elements, volume=volume,
        min_distance=distance,
    )
    return parsed, summary


def _too_close(parsed: _Parsed, distance: float, i: int, j: int, limit: float) -> str:
    first = parsed.line_of_atom
    if i == j:
        return (f"line {first + i}: atom {i + 1} ({parsed.symbols[i]}) is {distance:.2f} Å from "
                f"its own periodic image; closer than {limit:g} Å — the cell is too small: "
                f"check the lattice vectors and the scale factor on line 2")
    hint = ("check for duplicated lines" if distance < 0.01 else
            "check the coordinates, the Direct/Cartesian line and the scale factor")
    return (f"lines {first + i} and {first + j}: atoms {i + 1} and {j + 1} "
            f"({parsed.symbols[i]}, {parsed.symbols[j]}) are {distance:.2f} Å apart; "
            f"closer than {limit:g} Å — {hint}")


def _formula(symbols: list[str]) -> tuple[str, tuple[str, ...]]:
    """ASE's default ("hill") formula: C, then H, then the rest alphabetically; no 1s."""
    counts: dict[str, int] = {}
    for symbol in symbols:
        counts[symbol] = counts.get(symbol, 0) + 1
    order = [s for s in ("C", "H") if s in counts] + sorted(set(counts) - {"C", "H"})
    formula = "".join(s if counts[s] == 1 else f"{s}{counts[s]}" for s in order)
    return formula, tuple(order)


def _listed(items, separator=", ", limit=12) -> str:
    """Items for a one-line message: a long list is cut, not dumped."""
    items = list(items)
    shown = separator.join(items[:limit])
    return shown if len(items) <= limit else f"{shown}{separator}… ({len(items)} in all)"


def _number(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def _finite(token: str, number: int, what: str) -> float:
    """The token as a finite number, else a one-line error; `what` names it around `{}`."""
    value = _number(token)
    if value is None:
        raise StructureError(f"line {number}: {what.format(repr(token))} is not a number")
    if not math.isfinite(value):
        raise StructureError(f"line {number}: {what.format(token)} is not finite")
    return value


def _parse(text: str, supported_elements) -> _Parsed:
    if not text.strip():
        raise StructureError("empty structure; expected POSCAR text")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():  # trailing blank lines are not missing atoms
        lines.pop()

    def line(number: int, what: str) -> str:
        if number > len(lines):
            raise StructureError(
                f"truncated: the text ends after line {len(lines)}; expected {what} on line "
                f"{number}")
        return lines[number - 1]

    raw_scale = _scale(line(2, "the scale factor"))
    raw_cell = np.array([_lattice(number, line(number, f"lattice vector {axis}"), axis)
                         for number, axis in ((3, "a"), (4, "b"), (5, "c"))])
    _check_not_degenerate(raw_cell, "")
    scale = np.array(raw_scale)
    if scale[0] < 0.0:  # VASP: a negative scale is the cell volume; same arithmetic as ASE
        scale = np.cbrt(-1.0 * scale / np.linalg.det(raw_cell))
    with np.errstate(over="ignore"):  # reported just below
        cell = raw_cell * scale  # one factor, or one per Cartesian axis (x, y, z), as ASE does
    if not np.isfinite(cell).all():
        raise StructureError("line 2: the scale factor makes the lattice vectors overflow; "
                             "use a smaller one (usually 1.0)")
    _check_not_degenerate(cell, " after applying the scale factor on line 2")

    species = _species(line(6, "the element symbols (e.g. 'Cu Au')"))
    counts = _counts(line(_COUNTS_LINE, "the atom counts"), species)
    symbols_present = {s for s, n in zip(species, counts, strict=True) if n > 0}
    if supported_elements is not None:
        unsupported = sorted(symbols_present - set(supported_elements))
        if unsupported:
            raise StructureError(
                f"line 6: elements {_listed(unsupported)} are not supported by this workflow "
                f"(supported: {', '.join(sorted(supported_elements))})")

    mode_line = _COUNTS_LINE + 1
    mode = line(mode_line, "'Direct' or 'Cartesian' (or 'Selective dynamics')").strip()
    selective = mode[:1] in ("s", "S")
    if selective:
        mode_line += 1
        mode = line(mode_line, "'Direct' or 'Cartesian'").strip()
    if not mode:
        raise StructureError(f"line {mode_line}: empty; expected 'Direct' or 'Cartesian'")
    if mode[0] in "0123456789+-.":
        raise StructureError(
            f"line {mode_line}: found coordinates where 'Direct' or 'Cartesian' should be; "
            f"add that line above the coordinates")
    cartesian = mode[0] in "cCkK"  # as VASP and ASE: anything else means Direct

    natoms = sum(counts)
    first = mode_line + 1
    present = len(lines) - first + 1
    if present < natoms:  # before allocating anything for the declared count
        atoms = "atom" if natoms == 1 else "atoms"
        plural = "line" if present == 1 else "lines"
        raise StructureError(
            f"line {_COUNTS_LINE}: declares {natoms} {atoms} but has {present} coordinate "
            f"{plural}; fix the counts or add the missing coordinates")
    if natoms > MAX_ATOMS:
        raise StructureError(f"line {_COUNTS_LINE}: declares {natoms} atoms; at most {MAX_ATOMS} "
                             f"are supported — split the structure")
    symbols = [s for s, n in zip(species, counts, strict=True) for _ in range(n)]
    positions, fixed = _coordinates(lines, first, symbols, selective, mode_line - 1)
    return _Parsed(scale, cell, positions, cartesian, symbols, fixed, first)


def _scale(text: str) -> list[float]:
    tokens = text.split()
    if not tokens:
        raise StructureError("line 2: empty; expected the scale factor, e.g. 1.0")
    values = []
    for token in tokens[:3]:  # leading numbers, as ASE reads them; the rest is a comment
        value = _number(token)
        if value is None:
            break
        if not math.isfinite(value):
            raise StructureError(f"line 2: scale factor {token} is not finite; expected e.g. 1.0")
        values.append(value)
    if not values:
        raise StructureError(f"line 2: scale factor {tokens[0]!r} is not a number; "
                             f"expected e.g. 1.0")
    if len(values) == 2:
        raise StructureError("line 2: 2 scale factors; give 1, or 3 (one per Cartesian axis)")
    if len(values) == 3 and min(values) <= 0:
        raise StructureError(
            f"line 2: three scale factors must all be positive, got {' '.join(tokens[:3])}; "
            f"a negative value (the cell volume) must stand alone")
    if values[0] == 0:
        raise StructureError("line 2: scale factor is 0; use 1.0, or a negative number to give "
                             "the cell volume in Å^3")
    return values


def _lattice(number: int, text: str, axis: str) -> list[float]:
    tokens = text.split()
    if len(tokens) < 3:
        found = "an empty line" if not tokens else f"{len(tokens)}"
        raise StructureError(f"line {number}: lattice vector {axis} needs 3 numbers, "
                             f"found {found}")
    return [_finite(token, number, f"lattice vector {axis} component {{}}")
            for token in tokens[:3]]


def _check_not_degenerate(cell: np.ndarray, where: str) -> None:
    # Relative to the edge lengths, so it does not depend on the units or the scale factor.
    volume = abs(float(np.linalg.det(cell)))
    if not volume > 1e-9 * float(np.prod(np.linalg.norm(cell, axis=1))):
        raise StructureError(
            f"lines 3-5: lattice vectors are degenerate (cell volume {volume:.3g} Å^3{where}): "
            f"two are parallel or one is zero — check the lattice lines")


def _species(text: str) -> list[str]:
    tokens = text.split()
    if not tokens:
        raise StructureError("line 6: empty; expected the element symbols, e.g. 'Cu Au'")
    if tokens[0].lstrip("+").isdigit():
        raise StructureError(
            "line 6: atom counts without element symbols (VASP 4 format); add the element "
            "symbols line above the counts, e.g. 'Cu Au'")
    species, unknown = [], []
    for token in tokens:
        if token[0] in "!#":
            break
        # POTCAR labels as VASP writes them: Cu_pv, Na_pv/6a2f546d (as ASE strips them)
        symbol = token.split("/")[0].split("_")[0]
        if symbol not in ELEMENTS:
            unknown.append((token, symbol))
        species.append(symbol)
    if unknown:
        hints = [_BY_LOWER[s.lower()] for _, s in unknown if s.lower() in _BY_LOWER]
        names = _listed(repr(t) for t, _ in unknown)
        verb = "is not an element symbol" if len(unknown) == 1 else "are not element symbols"
        if hints:
            fix = f"did you mean {_listed(repr(h) for h in hints)}?"
        elif any(t.lstrip("+-").replace(".", "", 1).isdigit() for t, _ in unknown):
            fix = "the counts go on their own line below the symbols"
        else:
            fix = "use element symbols such as 'Cu Au'"
        raise StructureError(f"line 6: {names} {verb}; {fix}")
    return species


def _counts(text: str, species: list[str]) -> list[int]:
    where = f"line {_COUNTS_LINE}"
    for mark in "!#":  # a trailing comment
        text = text.split(mark, 1)[0]
    tokens = text.split()
    named = f"{len(species)} species ({_listed(species, ' ')})"
    if not tokens:
        raise StructureError(f"{where}: empty; expected one atom count for each of the {named}")
    counts = []
    for token in tokens:
        digits = token[1:] if token[:1] in "+-" else token
        if not (digits.isascii() and digits.isdigit()):
            raise StructureError(f"{where}: count {token!r} is not a whole number")
        counts.append(int(token))
    if len(counts) != len(species):
        plural = "count" if len(counts) == 1 else "counts"
        raise StructureError(f"{where}: {named} but {len(counts)} {plural}; give one count per "
                             f"species")
    for symbol, count in zip(species, counts, strict=True):
        if count < 0:
            raise StructureError(f"{where}: count {count} for {symbol} is negative")
    if sum(counts) == 0:
        raise StructureError(f"{where}: zero atoms; the counts must add up to at least 1")
    return counts


def _coordinates(lines, first, symbols, selective, selective_line):
    """Positions as written (and selective-dynamics flags); the slow path names the bad line."""
    rows = [text.split() for text in lines[first - 1:first - 1 + len(symbols)]]
    try:
        positions = np.array([(float(t[0]), float(t[1]), float(t[2])) for t in rows])
    except (ValueError, IndexError):
        positions = None
    if positions is None or not np.isfinite(positions).all():
        _bad_coordinates(rows, first, symbols)
    if not selective:
        return positions, None
    flags = [t[3:6] for t in rows]
    for index, three in enumerate(flags):
        if len(three) < 3 or not {"T", "F"}.issuperset(three):
            raise StructureError(
                f"line {first + index}: atom {index + 1} ({symbols[index]}) needs "
                f"selective-dynamics flags T or F for x, y and z after its coordinates (line "
                f"{selective_line} turns selective dynamics on)")
    return positions, np.array(flags) == "F"


def _bad_coordinates(rows, first, symbols) -> None:
    for index, tokens in enumerate(rows):
        number, atom = first + index, f"atom {index + 1} ({symbols[index]})"
        if not tokens:
            raise StructureError(
                f"line {number}: empty line where the coordinates of {atom} should be; the "
                f"counts on line {_COUNTS_LINE} declare {len(symbols)} atoms")
        if len(tokens) < 3:
            raise StructureError(f"line {number}: {atom} needs 3 coordinates, found "
                                 f"{len(tokens)}")
        for token in tokens[:3]:
            _finite(token, number, f"coordinate {{}} of {atom}")
    raise AssertionError("no bad coordinate found")  # pragma: no cover


# --- closest pair under periodic boundaries --------------------------------------------------


def _closest_pair(cell: np.ndarray, fractional: np.ndarray) -> tuple[float, int, int]:
    """Exact smallest distance (atoms i <= j; i == j: an atom and its own image)."""
    unimodular = _reduce_basis(cell)
    reduced = unimodular.astype(float) @ cell  # same lattice, nearly orthogonal vectors
    frac = fractional @ np.rint(np.linalg.inv(unimodular))
    frac = frac - np.floor(frac)
    frac[frac >= 1.0] = 0.0  # -1e-17 wraps to 1.0 in floating point
    volume = abs(float(np.linalg.det(reduced)))
    # The answer is at most the shortest lattice vector (an atom's own image) and at most the
    # spacing of the densest sphere packing at this density (Kepler/Hales: d^3 <= sqrt(2) V/N).
    limit = min(float(np.linalg.norm(reduced, axis=1).min()),
                (math.sqrt(2.0) * volume / len(frac)) ** (1 / 3)) * (1 + 1e-6)
    budget = _PAIRS_PER_ATOM * len(frac) + _BATCH
    lower, cutoff = 0.0, min(_FIRST_SEARCH_CUTOFF, limit)
    for _ in range(200):
        grid = _Grid(reduced, volume, frac, cutoff)
        if grid.work > budget and cutoff / 4 > max(lower, limit * 1e-9):
            cutoff /= 4  # crowded (e.g. Direct coordinates read as Cartesian): look closer
            continue
        best, i, j = grid.closest()
        if best <= cutoff:  # every pair within the cutoff was seen, so this is the minimum
            return best, i, j
        lower = cutoff  # no pair is this close
        cutoff = min(best, limit, 4 * cutoff) if cutoff < limit else best
    raise AssertionError("closest-pair search did not converge")  # pragma: no cover


def _reduce_basis(cell: np.ndarray) -> np.ndarray:
    """Integer U with det ±1 such that U @ cell is LLL-reduced (keeps the image search small)."""
    basis = cell.astype(float).copy()
    unimodular = np.eye(3, dtype=np.int64)
    k = 1
    for _ in range(1000):  # only ever affects speed, never the answer
        if k >= 3:
            break
        ortho, mu = _gram_schmidt(basis)
        for j in range(k - 1, -1, -1):
            q = round(mu[k, j])
            if q:
                basis[k] -= q * basis[j]
                unimodular[k] -= q * unimodular[j]
                ortho, mu = _gram_schmidt(basis)
        if ortho[k] @ ortho[k] >= (0.99 - mu[k, k - 1] ** 2) * (ortho[k - 1] @ ortho[k - 1]):
            k += 1
        else:
            basis[[k - 1, k]] = basis[[k, k - 1]]
            unimodular[[k - 1, k]] = unimodular[[k, k - 1]]
            k = max(k - 1, 1)
    return unimodular


def _gram_schmidt(basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ortho = np.zeros_like(basis)
    mu = np.zeros((3, 3))
    for i in range(3):
        ortho[i] = basis[i]
        for j in range(i):
            mu[i, j] = basis[i] @ ortho[j] / (ortho[j] @ ortho[j])
            ortho[i] -= mu[i, j] * ortho[j]
    return ortho, mu


_BATCH = 1 << 18  # candidate pairs per numpy batch: bounds memory for any N
_PAIRS_PER_ATOM = 200  # more candidates than this and the search first tries a smaller cutoff


class _Grid:
    """A cell list that sees every pair (and self-image) within ``cutoff``, and some more.

    Bins over fractional coordinates are at least ``cutoff`` wide measured perpendicular to
    the lattice planes (plane spacing V / |b x c|), so a pair within the cutoff is at most
    ``reach`` bins apart along each axis, and the bin offset says which periodic image. Only
    half the offsets are scanned (the pair i, j at +o is j, i at -o). Bins are sparse (sorted
    ids), so a big, mostly empty cell costs nothing.
    """

    def __init__(self, cell, volume, frac, cutoff):
        spacing = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        width = cutoff * (1 + 1e-9) + 1e-12
        nbins = np.clip(np.floor(spacing / width), 1, 1 << 20).astype(np.int64)
        reach = np.ceil(width * nbins / spacing).astype(np.int64)
        offsets = np.array(list(itertools.product(*(range(-r, r + 1) for r in reach))))
        leading = np.where(offsets[:, 0] != 0, offsets[:, 0],
                           np.where(offsets[:, 1] != 0, offsets[:, 1], offsets[:, 2]))
        self.offsets = offsets[leading > 0]
        bins = np.minimum((frac * nbins).astype(np.int64), nbins - 1)
        ids = (bins[:, 0] * nbins[1] + bins[:, 1]) * nbins[2] + bins[:, 2]
        self.order = np.argsort(ids, kind="stable")
        self.ids, self.bins = ids[self.order], bins[self.order]
        self.positions = frac[self.order] @ cell
        self.unique, self.starts, self.sizes = np.unique(
            self.ids, return_index=True, return_counts=True)
        self.cell, self.nbins = cell, nbins
        self.work = float(self.sizes @ self.sizes) * (len(self.offsets) + 0.5)

    def _id(self, bins):
        return (bins[..., 0] * self.nbins[1] + bins[..., 1]) * self.nbins[2] + bins[..., 2]

    def closest(self) -> tuple[float, int, int]:
        best = (math.inf, -1, -1)
        count = len(self.offsets)
        chunk = max(1, (1 << 17) // (count + 1))
        for lo in range(0, len(self.ids), chunk):
            atoms = np.arange(lo, min(lo + chunk, len(self.ids)))
            # Partners in the same bin: later atoms only, no image shift.
            slot = np.searchsorted(self.unique, self.ids[atoms])
            end = self.starts[slot] + self.sizes[slot]
            best = min(best, self._scan(atoms, atoms + 1, end - atoms - 1, self.positions[atoms]))
            # Partners in neighbouring bins, and in images of the own bin in a small cell.
            target = self.bins[atoms][:, None, :] + self.offsets[None, :, :]
            image = np.floor_divide(target, self.nbins)
            tid = self._id(target - image * self.nbins).ravel()
            slot = np.minimum(np.searchsorted(self.unique, tid), len(self.unique) - 1)
            hit = np.flatnonzero(self.unique[slot] == tid)
            owner = atoms[hit // count]
            # Atom j seen from atom i through image shift s sits at positions[j] + s @ cell.
            base = self.positions[owner] - image.reshape(-1, 3)[hit] @ self.cell
            best = min(best, self._scan(owner, self.starts[slot[hit]], self.sizes[slot[hit]],
                                        base))
            if best[0] == 0.0:  # duplicated atoms: nothing can be closer
                break
        return best

    def _scan(self, owner, first, count, base) -> tuple[float, int, int]:
        """Closest of atom owner[k] (at base[k]) and atoms first[k] .. first[k]+count[k]-1."""
        best = (math.inf, -1, -1)
        keep = count > 0
        owner, first, count, base = owner[keep], first[keep], count[keep], base[keep]
        total = np.cumsum(count)
        lo = 0
        while lo < len(count):
            done = int(total[lo - 1]) if lo else 0
            hi = max(lo + 1, int(np.searchsorted(total, done + _BATCH, side="right")))
            sizes = count[lo:hi]
            which = np.repeat(np.arange(hi - lo), sizes)
            j = first[lo:hi][which] + (np.arange(len(which)) - (np.cumsum(sizes) - sizes)[which])
            delta = self.positions[j] - base[lo:hi][which]
            squared = np.einsum("ij,ij->i", delta, delta)
            k = int(np.argmin(squared))
            pair = sorted((int(self.order[owner[lo + which[k]]]), int(self.order[j[k]])))
            best = min(best, (math.sqrt(float(squared[k])), *pair))
            if best[0] == 0.0:
                break
            lo = hi
        return best


# --- ASE -------------------------------------------------------------------------------------


def parse_poscar(text: str, supported_elements: frozenset[str] | None = None):
    """ASE Atoms from POSCAR text, checked first by :func:`check_poscar` (StructureError).

    Built with the same arithmetic as ``ase.io.read(..., format="vasp")``, so cell, positions,
    symbols and selective-dynamics constraints are identical; velocities are not read.
    """
    from ase import Atoms
    from ase.constraints import FixAtoms, FixScaled

    parsed, _ = _check(text, supported_elements, MIN_DISTANCE)
    atoms = Atoms(symbols=parsed.symbols, cell=parsed.cell, pbc=True)
    if parsed.cartesian:
        atoms.set_positions(parsed.raw_positions * parsed.scale)
    else:
        atoms.set_scaled_positions(parsed.raw_positions)
    if parsed.fixed is not None:
        every = parsed.fixed.all(axis=1)
        some = parsed.fixed.any(axis=1) & ~every
        constraints = [FixScaled(a=int(index), mask=parsed.fixed[index], cell=atoms.get_cell())
                       for index in np.flatnonzero(some)]
        if every.any():
            constraints.append(FixAtoms(indices=np.flatnonzero(every)))
        atoms.set_constraint(constraints)
    return atoms


def to_poscar(atoms) -> str:
    import ase.io

    buffer = io.StringIO()
    ase.io.write(buffer, atoms, format="vasp", direct=True, sort=False)
    return buffer.getvalue()
