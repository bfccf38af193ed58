"""Which pictures of an H.264 stream a 1 fps pass must decode, read from the slice headers.

The 1 fps decode already skips pictures nobody references (``skip_frame=NONREF``). With
B-pyramids (x264's default) a fifth of the pictures are B-frames that *are* references, but
only for the B-frames around them: when no decoded picture uses one and it is not itself a
grid frame, decoding it is wasted (a third of the decoding left on 720p x264 footage).
Whether a P-frame uses a B reference depends on the encoder (x264 at ``ref=1`` never does;
at ``ref=3`` it may), so it is read from the stream, not assumed: this module parses each
slice header (up to the reference picture marking), replays the decoded picture buffer as
the standard defines it (sliding window, MMCO 1, list initialisation and modification) and
follows the references back from the grid frames.

Anything outside what is replayed here (fields, long-term references, MMCO other than 1,
picture order count types 1 and 2, frame-number gaps, slice groups, Annex B packets, several
pictures in one packet) raises ``Unsupported``, and the caller decodes as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Profiles whose SPS carries chroma format, bit depths and scaling matrices.
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
_P, _B, _I, _SP, _SI = 0, 1, 2, 3, 4
# Bytes of a slice NAL read for its header: most fit in the first (x264: 6-30 bytes), and a
# long one (pred_weight_table for 32 references is ~200 bytes) is read again in full.
_SHORT_HEADER, _HEADER_BYTES = 64, 320


SKIP, PRESENT, EXACT = 0, 1, 2


class Unsupported(Exception):
    """The stream uses something this replay does not model: decode it the plain way."""


class _Truncated(Unsupported):
    """The header goes on past the bytes read."""


class _Bits:
    """Exp-Golomb bit reader over one RBSP (emulation prevention bytes already removed)."""

    __slots__ = ("value", "left")

    def __init__(self, data: bytes):
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def u(self, n: int) -> int:
        if n > self.left:
            raise _Truncated("header runs past the bytes read")
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)

    def ue(self) -> int:
        rest = self.value & ((1 << self.left) - 1)
        if not rest:
            raise _Truncated("header runs past the bytes read")
        zeros = self.left - rest.bit_length()
        if zeros > 31:
            raise Unsupported("exp-Golomb code out of range")
        self.left -= zeros
        return self.u(zeros + 1) - 1

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    # Left to right, non-overlapping: exactly the standard's emulation prevention removal.
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


@dataclass
class _Sps:
    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    max_num_ref_frames: int
    frame_mbs_only: bool
    chroma_array_type: int
    separate_colour_plane: bool
    gaps_allowed: bool


@dataclass
class _Pps:
    sps_id: int
    bottom_field_pic_order: bool
    num_ref_idx_default: tuple[int, int]
    weighted_pred: bool
    weighted_bipred_idc: int
    redundant_pic_cnt_present: bool


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        last = nxt or last


def parse_sps(rbsp: bytes) -> tuple[int, _Sps]:
    bits = _Bits(rbsp[1:])
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    sps_id = bits.ue()
    chroma_format, separate = 1, False
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            separate = bool(bits.u(1))
        bits.ue(), bits.ue()  # bit depths
        bits.u(1)  # qpprime_y_zero_transform_bypass
        if bits.u(1):
            for i in range(8 if chroma_format != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    log2_max_frame_num = bits.ue() + 4
    poc_type = bits.ue()
    log2_max_poc_lsb = 0
    if poc_type == 0:
        log2_max_poc_lsb = bits.ue() + 4
    elif poc_type == 1:
        bits.u(1)
        bits.se(), bits.se()
        for _ in range(bits.ue()):
            bits.se()
    max_num_ref_frames = bits.ue()
    gaps = bool(bits.u(1))
    bits.ue(), bits.ue()  # picture size in macroblocks
    frame_mbs_only = bool(bits.u(1))
    return sps_id, _Sps(log2_max_frame_num, poc_type, log2_max_poc_lsb, max_num_ref_frames, frame_mbs_only,
                        0 if separate else chroma_format, separate, gaps)


def parse_pps(rbsp: bytes) -> tuple[int, _Pps]:
    bits = _Bits(rbsp[1:])
    pps_id, sps_id = bits.ue(), bits.ue()
    bits.u(1)  # entropy_coding_mode
    bottom = bool(bits.u(1))
    if bits.ue():
        raise Unsupported("slice groups (FMO)")
    defaults = (bits.ue() + 1, bits.ue() + 1)
    weighted_pred, weighted_bipred = bool(bits.u(1)), bits.u(2)
    bits.se(), bits.se(), bits.se()  # pic_init_qp, pic_init_qs, chroma_qp_index_offset
    bits.u(1), bits.u(1)  # deblocking_filter_control_present, constrained_intra_pred
    redundant = bool(bits.u(1))
    return pps_id, _Pps(sps_id, bottom, defaults, weighted_pred, weighted_bipred, redundant)


@dataclass
class _Slice:
    kind: int  # _P, _B, _I (SP counts as P, SI as I)
    first_mb: int
    pps_id: int
    frame_num: int
    idr: bool
    ref_idc: int
    poc_lsb: int
    delta_poc_bottom: int
    num_ref_idx: tuple[int, int]
    modifications: tuple[list[tuple[int, int]], list[tuple[int, int]]]
    mmco: list[tuple[int, int]] | None  # None: sliding window


def _modifications(bits: _Bits) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    if not bits.u(1):
        return out
    while True:
        idc = bits.ue()
        if idc == 3:
            return out
        if idc not in (0, 1):
            raise Unsupported("long-term reference list modification")
        out.append((idc, bits.ue()))


def _skip_weights(bits: _Bits, count: int, chroma: bool) -> None:
    for _ in range(count):
        if bits.u(1):
            bits.se(), bits.se()
        if chroma and bits.u(1):
            bits.se(), bits.se(), bits.se(), bits.se()


def parse_slice(rbsp: bytes, sps_by_id: dict[int, _Sps], pps_by_id: dict[int, _Pps]) -> _Slice:
    header = rbsp[0]
    ref_idc, nal_type = (header >> 5) & 3, header & 31
    bits = _Bits(rbsp[1:])
    first_mb = bits.ue()
    kind = bits.ue() % 5
    kind = {_SP: _P, _SI: _I}.get(kind, kind)
    pps_id = bits.ue()
    pps = pps_by_id.get(pps_id)
    sps = sps_by_id.get(pps.sps_id) if pps else None
    if sps is None:
        raise Unsupported("slice before its parameter sets")
    if sps.separate_colour_plane:
        bits.u(2)
    frame_num = bits.u(sps.log2_max_frame_num)
    if not sps.frame_mbs_only and bits.u(1):
        raise Unsupported("field pictures")
    idr = nal_type == 5
    if idr:
        bits.ue()
    if sps.poc_type != 0:
        raise Unsupported(f"picture order count type {sps.poc_type}")
    poc_lsb = bits.u(sps.log2_max_poc_lsb)
    delta_bottom = bits.se() if pps.bottom_field_pic_order else 0
    if pps.redundant_pic_cnt_present and bits.ue():
        raise Unsupported("redundant pictures")
    num_ref_idx = (0, 0)
    modifications: tuple[list, list] = ([], [])
    if kind == _B:
        bits.u(1)  # direct_spatial_mv_pred
    if kind in (_P, _B):
        num_ref_idx = pps.num_ref_idx_default
        if bits.u(1):
            num_ref_idx = (bits.ue() + 1, bits.ue() + 1 if kind == _B else 0)
        if kind == _P:
            num_ref_idx = (num_ref_idx[0], 0)
        modifications = (_modifications(bits), _modifications(bits) if kind == _B else [])
        if (pps.weighted_pred and kind == _P) or (pps.weighted_bipred_idc == 1 and kind == _B):
            bits.ue()
            chroma = sps.chroma_array_type != 0
            if chroma:
                bits.ue()
            _skip_weights(bits, num_ref_idx[0], chroma)
            if kind == _B:
                _skip_weights(bits, num_ref_idx[1], chroma)
    mmco: list[tuple[int, int]] | None = None
    if ref_idc:
        if idr:
            bits.u(1)
            if bits.u(1):
                raise Unsupported("long-term reference")
        elif bits.u(1):
            mmco = []
            while True:
                op = bits.ue()
                if op == 0:
                    break
                if op != 1:
                    raise Unsupported(f"memory management operation {op}")
                mmco.append((op, bits.ue()))
    return _Slice(kind, first_mb, pps_id, frame_num, idr, ref_idc, poc_lsb, delta_bottom, num_ref_idx,
                  modifications, mmco)


@dataclass
class Picture:
    """One packet's picture: what the replay learnt about it."""

    pts: int | None
    reference: bool
    bidir: bool  # every slice is a B slice
    idr: bool = False
    refs: set[int] = field(default_factory=set)  # indices of the pictures it may predict from
    buffer: list[int] = field(default_factory=list)  # the reference pictures held when it is decoded


@dataclass
class _Ref:
    index: int
    frame_num: int
    poc: int


class StreamReplay:
    """Feed packets in decode order (``add``); ``pictures`` gets one entry per packet."""

    def __init__(self, extradata: bytes | None):
        if not extradata or extradata[0] != 1 or len(extradata) < 7:
            raise Unsupported("not an avcC (length-prefixed) stream")
        self.length_size = (extradata[4] & 3) + 1
        self.sps: dict[int, _Sps] = {}
        self.pps: dict[int, _Pps] = {}
        self._read_avcc(extradata)
        self.pictures: list[Picture] = []
        self.dpb: list[_Ref] = []
        self.prev_ref_frame_num: int | None = None
        self.prev_poc = (0, 0)  # (msb, lsb) of the previous reference picture

    def _read_avcc(self, data: bytes) -> None:
        pos = 5
        for count_mask, parse in ((0x1F, self._sps_nal), (0xFF, self._pps_nal)):
            count = data[pos] & count_mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(data[pos:pos + 2], "big")
                parse(_rbsp(bytes(data[pos + 2:pos + 2 + size])))
                pos += 2 + size

    def _sps_nal(self, rbsp: bytes) -> None:
        sps_id, sps = parse_sps(rbsp)
        if sps.gaps_allowed:
            raise Unsupported("frame-number gaps allowed")
        self.sps[sps_id] = sps

    def _pps_nal(self, rbsp: bytes) -> None:
        pps_id, pps = parse_pps(rbsp)
        self.pps[pps_id] = pps

    def add(self, data, pts: int | None) -> Picture:
        """One packet (a bytes-like object holding one access unit): its picture."""
        view = memoryview(data)
        slices: list[_Slice] = []
        pos, size, length = 0, len(view), self.length_size
        while pos + length <= size:
            nal_size = int.from_bytes(view[pos:pos + length], "big")
            start = pos + length
            pos = start + nal_size
            if nal_size == 0 or pos > size:
                break
            nal_type = view[start] & 31
            if nal_type in (1, 5):
                try:
                    piece = parse_slice(_rbsp(bytes(view[start:start + min(nal_size, _SHORT_HEADER)])),
                                        self.sps, self.pps)
                except _Truncated:
                    if nal_size <= _SHORT_HEADER:
                        raise
                    piece = parse_slice(_rbsp(bytes(view[start:start + min(nal_size, _HEADER_BYTES)])),
                                        self.sps, self.pps)
                slices.append(piece)
            elif nal_type == 7:
                self._sps_nal(_rbsp(bytes(view[start:pos])))
            elif nal_type == 8:
                self._pps_nal(_rbsp(bytes(view[start:pos])))
            elif nal_type in (2, 3, 4, 20):
                raise Unsupported(f"NAL unit type {nal_type}")
        if not slices:
            # No picture (parameter sets or SEI only): nothing to decode or plan.
            picture = Picture(pts, reference=False, bidir=False)
            self.pictures.append(picture)
            return picture
        if sum(1 for s in slices if s.first_mb == 0) != 1 or slices[0].first_mb != 0:
            raise Unsupported("not one picture per packet")
        return self._picture(slices, pts)

    def _picture(self, slices: list[_Slice], pts: int | None) -> Picture:
        first = slices[0]
        sps = self.sps[self.pps[first.pps_id].sps_id]
        max_frame_num = 1 << sps.log2_max_frame_num
        index = len(self.pictures)
        if first.idr:
            self.dpb = []
            self.prev_ref_frame_num, self.prev_poc = 0, (0, 0)
            if first.frame_num != 0:
                raise Unsupported("IDR picture with a frame number")
        elif self.prev_ref_frame_num is None:
            raise Unsupported("stream does not start with an IDR picture")
        elif first.frame_num not in (self.prev_ref_frame_num, (self.prev_ref_frame_num + 1) % max_frame_num):
            raise Unsupported("frame-number gap")
        poc = self._poc(first, sps)
        picture = Picture(pts, reference=first.ref_idc != 0, bidir=all(s.kind == _B for s in slices),
                          idr=first.idr, buffer=[ref.index for ref in self.dpb])
        for piece in slices:
            if piece.frame_num != first.frame_num or (piece.ref_idc != 0) != picture.reference:
                raise Unsupported("slices of one picture disagree")
            picture.refs.update(ref.index for ref in self._lists(piece, poc, max_frame_num))
        self.pictures.append(picture)
        if picture.reference:
            self._mark(first, index, poc, sps, max_frame_num)
        return picture

    def _poc(self, piece: _Slice, sps: _Sps) -> int:
        max_lsb = 1 << sps.log2_max_poc_lsb
        prev_msb, prev_lsb = self.prev_poc
        lsb = piece.poc_lsb
        if lsb < prev_lsb and prev_lsb - lsb >= max_lsb // 2:
            msb = prev_msb + max_lsb
        elif lsb > prev_lsb and lsb - prev_lsb > max_lsb // 2:
            msb = prev_msb - max_lsb
        else:
            msb = prev_msb
        if piece.ref_idc:
            self._pending_poc = (msb, lsb)
        top = msb + lsb
        return min(top, top + piece.delta_poc_bottom)

    def _lists(self, piece: _Slice, poc: int, max_frame_num: int) -> list[_Ref]:
        if piece.kind == _I:
            return []

        def pic_num(ref: _Ref) -> int:
            return ref.frame_num - max_frame_num if ref.frame_num > piece.frame_num else ref.frame_num

        if piece.kind == _P:
            initial = [sorted(self.dpb, key=pic_num, reverse=True)]
        else:
            before = sorted((r for r in self.dpb if r.poc < poc), key=lambda r: r.poc, reverse=True)
            after = sorted((r for r in self.dpb if r.poc > poc), key=lambda r: r.poc)
            l0, l1 = before + after, after + before
            if len(l1) > 1 and l1 == l0:
                l1[0], l1[1] = l1[1], l1[0]
            initial = [l0, l1]
        used: list[_Ref] = []
        for lst, count, modifications in zip(initial, piece.num_ref_idx, piece.modifications, strict=False):
            predicted, position = piece.frame_num, 0
            for idc, abs_diff in modifications:
                step = abs_diff + 1
                no_wrap = predicted - step if idc == 0 else predicted + step
                no_wrap %= max_frame_num
                predicted = no_wrap
                target_num = no_wrap - max_frame_num if no_wrap > piece.frame_num else no_wrap
                target = next((r for r in self.dpb if pic_num(r) == target_num), None)
                if target is None:
                    raise Unsupported("reference list names a picture not in the buffer")
                lst = lst[:position] + [target] + [r for r in lst[position:] if r is not target]
                position += 1
            used.extend(lst[:count])
        return used

    def _mark(self, piece: _Slice, index: int, poc: int, sps: _Sps, max_frame_num: int) -> None:
        def pic_num(ref: _Ref) -> int:
            return ref.frame_num - max_frame_num if ref.frame_num > piece.frame_num else ref.frame_num

        if piece.mmco is not None:
            for _, difference in piece.mmco:
                target = piece.frame_num - (difference + 1)
                victim = next((r for r in self.dpb if pic_num(r) == target), None)
                if victim is None:
                    raise Unsupported("memory management names a picture not in the buffer")
                self.dpb.remove(victim)
        elif len(self.dpb) >= max(1, sps.max_num_ref_frames):
            self.dpb.remove(min(self.dpb, key=pic_num))
        self.dpb.append(_Ref(index, piece.frame_num, poc))
        self.prev_ref_frame_num = piece.frame_num
        self.prev_poc = self._pending_poc


def needed_pictures(pictures: list[Picture], times: list[float | None], half_frame: float,
                    offset: int = 0, target: int = 0) -> tuple[list[int], int]:
    """Per picture: ``SKIP``, ``PRESENT`` or ``EXACT`` for the 1 fps grid that
    ``skip_frame=NONREF`` gives, and the grid's next second after them.

    ``pictures`` are one or more whole GOPs (IDR to IDR: nothing predicts across an IDR),
    numbered from ``offset``; ``target`` is the first second no earlier picture filled.
    ``EXACT`` pictures come out as a full decode gives them: the grid frames (the first
    reference picture at or after each second), every reference picture that is not a
    B-frame (the shot detector sees them, and P-frames chain to the next grid frame anyway),
    and whatever they predict from. A skipped reference leaves a stand-in in the decoder's
    buffer with a made-up picture order count, and B-frames order their lists and weigh
    their predictions by those counts: so every reference an exact B-frame finds in the
    buffer is decoded too, as ``PRESENT`` (its pixels may be off, it only holds the place).
    """
    decodable = sorted((t, i) for i, (p, t) in enumerate(zip(pictures, times, strict=True))
                       if p.reference and t is not None)
    exact = [p.reference and not p.bidir for p in pictures]
    for t, i in decodable:
        if t < target - half_frame:
            continue
        exact[i] = True
        while t >= target - half_frame:
            target += 1

    def local(refs) -> list[int]:
        out = [r - offset for r in refs]
        if any(r < 0 for r in out):
            raise Unsupported("a picture predicts from before its IDR")
        return out

    for i in range(len(pictures) - 1, -1, -1):
        if exact[i]:
            for ref in local(pictures[i].refs):
                exact[ref] = True
    state = [EXACT if e else SKIP for e in exact]
    for i, picture in enumerate(pictures):
        held = local(picture.buffer)
        if exact[i] and picture.bidir and not all(exact[r] for r in held):
            # (P-frames list references by frame number, which the stand-ins keep.)
            for ref in held:
                if not exact[ref]:
                    state[ref] = PRESENT
    return state, target


@dataclass(frozen=True)
class Step:
    """What to do with one packet: the ``skip_frame`` to decode it under, and whether the
    picture comes out exact (``False``: it only holds its place in the decoder's buffer)."""

    skip_frame: str
    exact: bool
    reference: bool = True  # False: NONREF leaves it out anyway


PLAIN = Step("NONREF", True)
# Packets of one GOP held back while it is planned; a longer GOP (or a stream with one IDR)
# is decoded the plain way up to its end (~20 s of 30 fps video, ~15 MB at 6 Mb/s).
MAX_GOP_PACKETS = 600


class DecodePlanner:
    """Plans an H.264 stream GOP by GOP while it is demuxed, so the file is read once.

    ``feed(packet)`` returns the packets now ready for the decoder, in demux order, each
    with its ``Step``: a GOP's packets are held until the next IDR shows where it ends.
    ``finish()`` returns the rest. Anything ``StreamReplay`` does not model turns planning
    off for the rest of the stream: what is held back and everything after decodes plainly.
    """

    def __init__(self, extradata: bytes | None, time_base, start: float, half_frame: float):
        self.replay = StreamReplay(extradata)  # raises Unsupported: no planner at all
        self.num, self.den = time_base.numerator, time_base.denominator
        self.start, self.half_frame = start, half_frame
        self.active = True
        self.held: list = []  # packets of the current GOP, not yet handed out
        self.gop_start = 0  # index of the current GOP's first picture
        self.plain_gop = False  # this GOP ran past MAX_GOP_PACKETS: handed out as it comes
        self.target = 0
        self.skipped = 0

    def _time(self, pts: int | None) -> float | None:
        return None if pts is None else float(pts) * self.num / self.den - self.start

    def _close_gop(self) -> list:
        """Plan (or only account for) the pictures since ``gop_start``; hand out what is held."""
        pictures = self.replay.pictures[self.gop_start:]
        states, self.target = needed_pictures(pictures, [self._time(p.pts) for p in pictures],
                                              self.half_frame, self.gop_start, self.target)
        out = []
        if not self.plain_gop:
            for packet, picture, state in zip(self.held, pictures, states, strict=True):
                skip = state == SKIP and picture.reference
                self.skipped += skip
                # NONREF decodes every reference picture (and skips the others, as before);
                # BIDIR skips a B reference nobody needs (only all-B pictures are left out).
                out.append((packet, Step("BIDIR", False) if skip
                             else Step("NONREF", state == EXACT, picture.reference)))
        for i in range(self.gop_start, len(self.replay.pictures)):
            self.replay.pictures[i] = None  # done with: the replay never looks back past an IDR
        self.gop_start = len(self.replay.pictures)
        self.held, self.plain_gop = [], False
        return out

    def _give_up(self, exc: Exception) -> list:
        log.debug("decode plan turned off: %s", exc)
        self.active = False
        out = [(packet, PLAIN) for packet in self.held]
        self.held = []
        return out

    def feed(self, packet) -> list:
        if packet.size == 0:  # the end of the stream: what is held goes before it
            return [*self.finish(), (packet, None)]
        if not self.active:
            return [(packet, PLAIN)]
        try:
            picture = self.replay.add(packet, packet.pts)
            out = []
            if picture.idr and len(self.replay.pictures) - 1 > self.gop_start:
                # This IDR starts the next GOP: close the previous one without it.
                self.replay.pictures.pop()
                out = self._close_gop()
                self.replay.pictures.append(picture)
            if self.plain_gop:
                return [*out, (packet, PLAIN)]
            self.held.append(packet)
            if len(self.held) > MAX_GOP_PACKETS:
                self.plain_gop = True
                out += [(held, PLAIN) for held in self.held]
                self.held = []
            return out
        except (Unsupported, IndexError, ValueError, KeyError, AttributeError) as exc:
            # Not modelled, or a damaged header (the decoder copes with those on its own).
            return self._give_up(exc) + [(packet, PLAIN)]

    def finish(self) -> list:
        if not self.active:
            return []
        try:
            return self._close_gop()
        except Unsupported as exc:
            return self._give_up(exc)


def plan_file(path: str) -> list[tuple[int | None, Step]]:
    """(pts, step) of every non-empty packet of a file's first video stream, as the 1 fps
    decode would plan them (for tests and benchmarks); raises ``Unsupported``."""
    import av

    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        if stream.codec_context.name != "h264":
            raise Unsupported(f"codec {stream.codec_context.name}")
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        half = 0.5 / float(stream.average_rate) if stream.average_rate else 0.02
        planner = DecodePlanner(stream.codec_context.extradata, stream.time_base, start, half)
        if not planner.active:
            raise Unsupported("planning turned off")
        steps = []
        for packet in container.demux(stream):
            steps += [(p.pts, step) for p, step in planner.feed(packet) if step is not None]
        steps += [(p.pts, step) for p, step in planner.finish()]
        if not planner.active:
            raise Unsupported("planning turned off mid-stream")
        return steps
