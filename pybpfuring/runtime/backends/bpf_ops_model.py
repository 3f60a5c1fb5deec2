"""`@iouring_program`s on the Linux >= 7.1 loop: a generated `loop_step` scheduler (first version).

    with ModelRing([counting]) as ring:
        ring.start(0, user_data=7)             # as an IORING_OP_BPF request naming program 0
        ring.run(min_complete=1)               # one io_uring_enter: programs run in the kernel
        print(ring.reap(0))                    # [(7, 0, 0)]: the request completed on CQ 0

The scheduler (bpf_ops_scheduler.py) is Python source in the language, generated per program list
(each program becomes a global function it dispatches to) and compiled for target `bpf_ops` with
the model library `pybpfuring/lang/loop_model.py`. Each step it (1) routes the kernel's CQEs to the virtual CQ named
by their SQE's cq_idx, (2) turns start records into program instances, (3) runs every runnable
instance and every waiting one whose CQ holds `wait_nr` CQEs (OK completes the request on its
cq_idx with res 0; WAIT records the wait), (4) submits the SQEs programs staged, and (5) stops once
CQ 0 holds `min_complete` CQEs or nothing is left to do. Programs must annotate `ctx: Ctx`.
"""
from __future__ import annotations

import ctypes
import mmap
import struct
from typing import Any

from ...errors import PyBpfUringError
from ...lang import loop_model as M
from ...lang.decorators import BpfFunction
from pybpfuring.abi import uring as C
from pybpfuring.abi.structs import Cqe
from pybpfuring.uring.syscalls import io_uring_register
from .bpf_ops import LoopRing
from .bpf_ops_scheduler import ProgramEntry, compile_scheduler, program_key

IORING_REGISTER_MEM_REGION = 34     # uapi io_uring.h (6.13+)
IORING_MEM_REGION_TYPE_USER = 1



class ModelStalled(PyBpfUringError):
    """The kernel loop stopped before CQ 0 held the CQEs run() waited for."""

# program functions -> (the scheduler's loop_step, its compiled ELF)
_SCHEDULERS: dict[tuple[object, ...], tuple[BpfFunction, bytes]] = {}


def _address_of(memory: mmap.mmap) -> int:
    """The mmap's address, without keeping a buffer export alive (which would stop close() from
    unmapping it once nobody else uses it)."""
    first = ctypes.c_char.from_buffer(memory)
    addr = ctypes.addressof(first)
    del first
    return addr


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


_CQ_STATE = struct.Struct("<12I")          # CqState
_CQE = struct.Struct("<QiI")
_LINK = struct.Struct("<Ii")
_WHY = struct.Struct("<QiIIIII")     # WhyNote (lang/loop_model.py), 32 bytes
_INST_RUNS = 24                           # Instance.runs offset
MMAPED = ("model_cq", "model_cqes", "model_starts", "model_links", "model_ctl", "model_insts",
          "model_why")


class ModelSizes:
    """Every size of a ring's kernel-side model, from the ring (docs/kernel.md, "Limits")."""

    def __init__(self, cq_sizes: list[int], nprogs: int, sq_entries: int,
                 max_in_flight: int = 4096, max_instances: int = M.MAX_INSTANCES):
        if not 1 <= max_instances <= M.MAX_INSTANCES:
            raise ValueError(f"a ring runs 1..{M.MAX_INSTANCES} program instances at once")
        self.cq_sizes = list(cq_sizes)                 # CQ 0 first
        self.ncq = len(cq_sizes)
        self.nreqs = _pow2(max(max_in_flight, 2 * sq_entries))
        self.ninst = _pow2(max_instances)
        self.nstarts = _pow2(max(2 * sq_entries, 64))
        self.nlinks = _pow2(self.nreqs + self.ninst)
        # CQ 0's slots hold everything that can complete at once beyond its size: it never drops.
        self.slots = [_pow2(cq_sizes[0] + self.nreqs + self.ninst)] + \
            [_pow2(c) for c in cq_sizes[1:]]
        self.bases = [sum(self.slots[:i]) for i in range(self.ncq)]
        self.nprogs = nprogs

    def map_sizes(self) -> dict[str, int]:
        return {"model_cq": self.ncq, "model_cqes": sum(self.slots), "model_reqs": self.nreqs,
                "model_staged": self.nreqs, "model_starts": self.nstarts,
                "model_insts": self.ninst, "model_runq": self.ninst, "model_wlink": self.ninst,
                "model_dirty": _pow2(self.ncq), "model_links": self.nlinks}

    def rodata(self) -> dict[str, int]:
        return {"model_ncq": self.ncq, "model_nreqs": self.nreqs, "model_ninst": self.ninst,
                "model_nstarts": self.nstarts, "model_nlinks": self.nlinks,
                "model_nprogs": self.nprogs, "model_ndirty": _pow2(self.ncq)}


class MapCq:
    """A CQ of the kernel model read straight from its mmapped map: `ready`, `reap`, `peek` cost
    no system call (the scheduler and user space never run at the same time: io_uring_enter is
    synchronous, and only the ring's task may call it)."""

    def __init__(self, index: int, state: mmap.mmap, cqes: mmap.mmap, size: int) -> None:
        self.index = index
        self.capacity = size
        self._state = state
        self._cqes = cqes
        self._off = index * _CQ_STATE.size     # 48: a multiple of 8, as the map's stride

    def _get(self, word: int) -> int:
        return int.from_bytes(self._state[self._off + 4 * word:self._off + 4 * word + 4], "little")

    def _set(self, word: int, value: int) -> None:
        self._state[self._off + 4 * word:self._off + 4 * word + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")

    @property
    def ready(self) -> int:
        return (self._get(1) - self._get(0)) & 0xFFFFFFFF

    @property
    def drops(self) -> int:
        return self._get(5)

    @property
    def overflowed(self) -> int:
        return self._get(6)

    @property
    def posted(self) -> int:
        """CQEs posted so far (the free-running tail; Ring.stats)."""
        return self._get(1)

    @property
    def waiting(self) -> int:
        return 0 if self._get(8) == M.NONE else 1

    def peek(self) -> Cqe | None:
        head = self._get(0)
        if head == self._get(1):
            return None
        slot = self._get(2) + (head & self._get(3))
        return Cqe._make(_CQE.unpack_from(self._cqes, slot * 16))

    def reap(self) -> Cqe | None:
        cqe = self.peek()
        if cqe is not None:
            self._set(0, self._get(0) + 1)
        return cqe

    def entries_list(self) -> list[Cqe]:
        out = []
        while (cqe := self.reap()) is not None:
            out.append(cqe)
        return out


class ModelRing:
    """A ring whose `@iouring_program`s run in the kernel loop (Linux >= 7.1)."""

    def __init__(self, programs: list[ProgramEntry], *, entries: int = 8, mem_size: int = 0,
                 memory: mmap.mmap | None = None, cq_sizes: list[int] | None = None,
                 max_in_flight: int = 4096, max_instances: int = M.MAX_INSTANCES):
        """`cq_sizes`: CQ 0's size, then each extra CQ's (default: 2 * entries, and three extra
        CQs of 256). `mem_size`: allocate that much user memory as the ring's MEM region
        (copy_to_user's targets); or `memory`: an anonymous mmap the caller allocated (and may
        have handed out parts of already), registered as it is."""
        key = tuple(program_key(p) for p in programs)
        built = _SCHEDULERS.get(key)
        if built is None:
            # Once per program list and process: each build imports a generated module, which
            # stays in sys.modules (a new one per ring grew the process by ~35 KiB a ring). The
            # compile cache key covers the generated module, every program it calls and the
            # bitcode of every linked body.
            built = _SCHEDULERS[key] = compile_scheduler(list(programs))
        step, elf = built
        self.sizes = ModelSizes(cq_sizes or [2 * entries, 256, 256, 256], len(programs),
                                entries, max_in_flight, max_instances)
        self.memory: mmap.mmap | None = memory
        rodata = self.sizes.rodata()
        if mem_size and memory is None:
            self.memory = mmap.mmap(-1, -(-mem_size // mmap.PAGESIZE) * mmap.PAGESIZE)
        if self.memory is not None:
            self.memory_addr = _address_of(self.memory)
            rodata.update(model_mem_base=self.memory_addr, model_mem_size=len(self.memory))
        self._views: dict[str, mmap.mmap] = {}
        self._timespecs: list[ctypes.Array[ctypes.c_int64]] = []
        self.loop = LoopRing(step, entries=entries, cq_entries=2 * entries, elf=elf,
                             rodata=rodata, map_sizes=self.sizes.map_sizes(),
                             mmapable=frozenset(MMAPED))
        try:
            if self.memory is not None:
                self._register_memory(len(self.memory))
            self.maps = self.loop.obj.maps  # type: ignore[union-attr]
            self._views = {name: self.maps[name].mmap() for name in MMAPED}
            self._init_state()
        except BaseException:
            self.close()
            raise
        self.programs = list(programs)
        self.cqs = [MapCq(i, self._views["model_cq"], self._views["model_cqes"], size)
                    for i, size in enumerate(self.sizes.cq_sizes)]
        for mname, value in self._map_defs():   # the user's maps, readable from user space
            if mname in self.maps:
                value.bind(self.maps[mname])

    def _map_defs(self) -> list[tuple[str, Any]]:
        """(name, MapDef) of the maps the programs' modules declare; none for an object's bodies
        (their maps are read by name, through ring.maps)."""
        return [(name, value) for p in self.programs if isinstance(p, BpfFunction)
                for name, value in p.globals.items()
                if hasattr(value, "bind") and hasattr(value, "map_type")]

    def _init_state(self) -> None:
        sz = self.sizes
        cqv = self._views["model_cq"]
        for i in range(sz.ncq):
            _CQ_STATE.pack_into(cqv, i * _CQ_STATE.size, 0, 0, sz.bases[i], sz.slots[i] - 1,
                                sz.cq_sizes[i], 0, 0, 0, M.NONE, M.NONE, 0, 0)
        self._ctl_set(M.CTL_REQ_FREE, M.NONE)
        self._ctl_set(M.CTL_INST_FREE, M.NONE)

    # ---- control words (u32 values at a stride of 8 bytes) ----
    def _ctl(self, word: int) -> int:
        return int.from_bytes(self._views["model_ctl"][4 * word:4 * word + 4], "little")

    def _ctl_set(self, word: int, value: int) -> None:
        self._views["model_ctl"][4 * word:4 * word + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")

    def _register_memory(self, size: int) -> None:
        """IORING_REGISTER_MEM_REGION with user memory (IORING_MEM_REGION_TYPE_USER)."""
        desc = (ctypes.c_uint64 * 8)()                    # struct io_uring_region_desc
        desc[0], desc[1], desc[2] = self.memory_addr, size, IORING_MEM_REGION_TYPE_USER
        reg = (ctypes.c_uint64 * 4)(ctypes.addressof(desc), 0, 0, 0)   # io_uring_mem_region_reg
        io_uring_register(self.loop.ring.fd, IORING_REGISTER_MEM_REGION, ctypes.addressof(reg), 1,
                          "REGISTER_MEM_REGION")

    # ---- submission ----
    def queue_room(self) -> int:
        """User submissions that fit before the next run()."""
        return self.sizes.nstarts - ((self._ctl(M.CTL_START_TAIL) - self._ctl(M.CTL_START_HEAD)) & 0xFFFFFFFF)

    def queue(self, sqe: bytes, cq_idx: int, fail: int = 0, link: int = 0) -> None:
        """Queue a user SQE (64 bytes; IORING_OP_BPF 37 starts program sqe.off) for the next run:
        its completion goes to CQ `cq_idx`; `fail` (not 0) completes it at once with that res;
        `link` (not 0) puts (link, res) in the link FIFO when it completes."""
        if len(sqe) != 64:
            raise ValueError("an SQE is 64 bytes")
        while self.queue_room() == 0:
            self.run(min_complete=0)          # the scheduler takes queued submissions first
        tail = self._ctl(M.CTL_START_TAIL)
        raw = bytearray(sqe)
        struct.pack_into("<HHiQ", raw, 48, cq_idx, 0, fail, link)
        off = (tail & (self.sizes.nstarts - 1)) * 64
        self._views["model_starts"][off:off + 64] = bytes(raw)
        self._ctl_set(M.CTL_START_TAIL, tail + 1)

    def start(self, program: int, user_data: int = 0, cq_idx: int = 0) -> None:
        """Queue a request that runs program `program` (as an IORING_OP_BPF SQE would)."""
        sqe = bytearray(64)
        struct.pack_into("<BBHiQ", sqe, 0, 37, 0, 0, -1, program)
        struct.pack_into("<Q", sqe, 32, user_data)
        self.queue(bytes(sqe), cq_idx)

    def submit_sqe(self, sqe: bytes, cq_idx: int = 0) -> None:
        self.queue(sqe, cq_idx)

    def submit_nop(self, user_data: int = 0, cq_idx: int = 0) -> None:
        sqe = bytearray(64)                          # IORING_OP_NOP = 0, fd -1
        sqe[4:8] = (-1).to_bytes(4, "little", signed=True)
        sqe[32:40] = user_data.to_bytes(8, "little")
        self.queue(bytes(sqe), cq_idx)

    def run(self, min_complete: int = 1, cq: int = 0) -> int:
        """io_uring_enter once: the loop runs until CQ `cq` holds min_complete CQEs, a chain needs
        user space, or nothing can move. ModelStalled if it stopped short of min_complete with
        nothing left that could get there."""
        if not 0 <= cq < self.sizes.ncq:
            raise ValueError(f"CQ {cq} does not exist (CQs 0..{self.sizes.ncq - 1})")
        self._ctl_set(M.CTL_WANT, min_complete)
        self._ctl_set(M.CTL_WANT_CQ, cq)
        self._ctl_set(M.CTL_FLUSHED, 0)
        self._ctl_set(M.CTL_STOP, 0)
        ret = self.loop.run()
        if self._timespecs and self._ctl(M.CTL_START_HEAD) == self._ctl(M.CTL_START_TAIL):
            self._timespecs.clear()         # every deadline timer reached the kernel
        err = self._ctl(M.CTL_SUBMIT_ERR)
        if err:
            self._ctl_set(M.CTL_SUBMIT_ERR, 0)
            got = err - (1 << 32) if err >= 1 << 31 else err
            raise ModelStalled(f"submit_sqes in the kernel loop submitted {got} of the staged SQEs")
        if min_complete and self.cqs[cq].ready < min_complete and self.stalled():
            raise ModelStalled(f"the loop stopped with {self.cqs[cq].ready} of {min_complete} CQEs "
                               f"on CQ {cq}: {self._ctl(M.CTL_ACTIVE)} program instance(s) wait for "
                               "CQEs that nothing in flight will post")
        return ret

    def stalled(self) -> bool:
        """Nothing can move without user space: no request in the kernel, nothing runnable,
        nothing queued, no chain to continue."""
        c = self._ctl
        return (c(M.CTL_INFLIGHT) == c(M.CTL_TIMERS) and c(M.CTL_RUNQ_HEAD) == c(M.CTL_RUNQ_TAIL)
                and c(M.CTL_START_HEAD) == c(M.CTL_START_TAIL)
                and c(M.CTL_STAGE_HEAD) == c(M.CTL_STAGE_TAIL)
                and c(M.CTL_DIRTY_HEAD) == c(M.CTL_DIRTY_TAIL)
                and c(M.CTL_LINK_HEAD) == c(M.CTL_LINK_TAIL))

    def busy(self) -> bool:
        """The last step left work ready to run at once (a step does a bounded amount)."""
        return self._ctl(M.CTL_BUSY) != 0

    def why_notes(self) -> list[tuple[int, int, int, int, int, int, int]]:
        """(user_data, res, code, a, b, line, program) of the requests the scheduler failed since
        the last call (M.WHY_*); a burst of more than WHY_NOTES between two calls keeps the newest."""
        tail, head = self._ctl(M.CTL_WHY_TAIL), getattr(self, "_why_head", 0)
        head = max(head, tail - M.WHY_NOTES)
        view = self._views["model_why"]
        out = [_WHY.unpack_from(view, ((head + i) & (M.WHY_NOTES - 1)) * _WHY.size)
               for i in range((tail - head) & 0xFFFFFFFF)]
        self._why_head = tail
        return out

    def links_done(self) -> list[tuple[int, int]]:
        """(link id, res) of the chain heads that completed since the last call."""
        head, tail = self._ctl(M.CTL_LINK_HEAD), self._ctl(M.CTL_LINK_TAIL)
        view, mask = self._views["model_links"], self.sizes.nlinks - 1
        out = [_LINK.unpack_from(view, ((head + i) & mask) * 8) for i in range((tail - head) & 0xFFFFFFFF)]
        self._ctl_set(M.CTL_LINK_HEAD, tail)
        return out

    def reap(self, cq_idx: int = 0) -> list[tuple[int, int, int]]:
        """All CQEs of CQ cq_idx as (user_data, res, flags), oldest first."""
        return [tuple(c) for c in self.cqs[cq_idx].entries_list()]

    def program_runs(self) -> int:
        """Program runs so far (a WAIT and its re-run count as two)."""
        return self._ctl(M.CTL_RUNS)

    def in_flight(self) -> int:
        """Requests in the kernel plus program instances not completed, plus queued ones."""
        queued = (self._ctl(M.CTL_START_TAIL) - self._ctl(M.CTL_START_HEAD)) & 0xFFFFFFFF
        return self._ctl(M.CTL_INFLIGHT) - self._ctl(M.CTL_TIMERS) + self._ctl(M.CTL_ACTIVE) + queued

    def arm_deadline(self, when_ns: int) -> None:
        """Queue a timer that ends the io_uring_enter running at CLOCK_MONOTONIC `when_ns` (the
        loop ignores io_uring_enter's own timeout): an IORING_OP_TIMEOUT the scheduler routes to
        no CQ; its CQE makes the step return to user space. Not a request: in_flight() and
        stalled() leave it out."""
        ts = (ctypes.c_int64 * 2)(when_ns // 1_000_000_000, when_ns % 1_000_000_000)
        self._timespecs.append(ts)          # alive until the scheduler has taken the SQE
        sqe = bytearray(64)                 # read by the kernel at submission, in this process
        struct.pack_into("<BBHiQQIIQ", sqe, 0, C.IORING_OP_TIMEOUT, 0, 0, -1, 0,  # count (off) 0
                         ctypes.addressof(ts), 1, C.IORING_TIMEOUT_ABS, 0)
        self.queue(bytes(sqe), M.DEADLINE_CQ)

    def deadlines_armed(self) -> int:
        return self._ctl(M.CTL_TIMERS) + sum(
            1 for i in range((self._ctl(M.CTL_START_TAIL) - self._ctl(M.CTL_START_HEAD)) & 0xFFFFFFFF)
            if self._start_cq(i) == M.DEADLINE_CQ)

    def _start_cq(self, i: int) -> int:
        off = ((self._ctl(M.CTL_START_HEAD) + i) & (self.sizes.nstarts - 1)) * 64
        return int.from_bytes(self._views["model_starts"][off + 48:off + 50], "little")

    def close(self) -> None:
        for _name, value in self._map_defs() if hasattr(self, "programs") else []:
            value.bind(None)
        for view in self._views.values():
            try:
                view.close()
            except BufferError:
                pass
        self._views = {}
        self.loop.close()                   # the ring goes: the MEM region is unpinned
        if self.memory is not None:
            try:
                self.memory.close()
            except BufferError:             # the address export stays alive with ctypes
                pass
            self.memory = None

    def __enter__(self) -> "ModelRing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
