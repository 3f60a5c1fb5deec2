"""Regression (differential tier): copy_from_user into a u8 local inside nested constant loops
made the verifier report "infinite loop detected" (the same state twice at the inner loop's exit).
Loads since every local has its own 8-byte-aligned slot, the fix of while_two_trips.py (there a
1-byte write turned the slot shared with a spilled loop flag into unknown bytes). Generated (progen seed 5008 size 3)."""
from pybpfuring import (Ctx, ArrayMap, HashMap, Array, struct, iouring_program, u8, u16, u32, u64,
                        i8, i16, i32, i64)
from pybpfuring.lang import bpf_function, copy_from_user


@struct
class S:
    a: u8
    b: i16
    c: u32
    d: i64
    e: Array[i32, 4]
    f: u64
    g: i8
    h: u16
    z: bool


am = ArrayMap(u64, 8)
ai = ArrayMap(i32, 4)
hm = HashMap(u32, i64, 8)
hk = HashMap(i16, u8, 3)
sm = ArrayMap(S, 2)
hs = HashMap(u16, S, 4)


@bpf_function
def fn1(a0: u32) -> i8:
    a0 = ((i8(a0)) % (a0)) < (((1) & (a0)) if (~(a0)) else (a0)) > ((16) or ((a0) + (a0)))
    hm[a0] %= ((a0) if (a0) else (a0)) >= (i8(0x9))
    return (i64(sm[(a0) * (a0)].h)) >= (a0)

@bpf_function
def fn2(a0: i32, a1: i16) -> i16:
    a0 |= ~(a1)
    if ((0x8000) * ((-710888078))) % ((a1) >> (64)):
        a1 = (~((65535) - (0x569776b52eccde9c))) - ((4294967296) <= ((a0) * (0x5500a6f579e77c09)))
    else:
        a1 |= -((a0) if (127) else (a0))
    return ((-65)) | ((a0) if (2) else (58841))

@bpf_function(inline=False)
def fn3(a0: i64) -> u8:
    sm[-(87128829983969)].f = 0x3e8
    a0 = (((15) >= (0x2)) * ((((0x8000000000000000) in hs)) % (a0))) + (not (i16(a0)))
    return (65536) < (a0)

@bpf_function
def fs4(s: S, x: u32) -> i32:
    x = ~(x)
    for it5 in range(3):
        if (x) + (x):
            continue
    return max((x) != (x), x)

@bpf_function(inline=False)
def fs6(s: S, x: i8) -> i32:
    for it7 in range(0):
        x = (4294967296) - (it7)
        if i16(it7):
            continue
        x = i64(s.f)
    x = (((s.e[(x) << (s.a)]) >> (256)) - (u64(65536))) * (~(not (x)))
    return x

@iouring_program
def prog188(ctx: Ctx) -> int:
    v189: u64 = ctx.wait_nr
    v190: u32 = ((ctx.wait_idx) and (v189)) >= ((31) and (v189)) < ((v189) if (v189) else (0x7fffffff))
    v191: i32 = ((v190) <= (63)) > (max(v189, ctx.user_data))
    v192: u8 = u64((sm[(7) >= (v190) >= (hk.get(v190, 0x3))].e[1]) or (ctx.user_data))
    v191 = not ((max(v190, 0x2)) | ((ctx.user_data) - (260237194)))
    if (v190) + (ctx.wait_nr):
        return v189
    am[u32(v191)] ^= max(ctx.wait_nr, +(v189))
    for it193 in range(0, 5):
        for it194 in range(-1, 4):
            ai[(v189) * (v191)] &= ~(v191)
            copy_from_user(v192, ctx.user_data + 16)
            if (ctx.user_data) & (v192):
                break
        hk[u32(v192)] = (ai[(v189) + (it193)]) ^ ((-100))
    return i8(+((v191) + (am[0x41])))

