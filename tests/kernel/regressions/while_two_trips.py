"""Regression (differential tier): a while loop of exactly two trips, rewritten by LLVM around a
first-trip flag that it spilled to the 8-byte stack slot of a u8 local; copy_from_user into that
local made the whole slot unknown to the verifier, so both trips looked the same: "infinite loop
detected". Fixed by giving every local its own 8-byte-aligned slot. Generated (progen seed
2360432 size 1), one program kept."""
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


am = ArrayMap(u64, 8)
ai = ArrayMap(i32, 4)
hm = HashMap(u32, i64, 8)
hk = HashMap(i16, u8, 3)
sm = ArrayMap(S, 2)


@bpf_function
def fn1(a0: i8, a1: i64, a2: u8) -> i32:
    for it2 in range(2):
        a2 = (4294967296) <= (it2)
        if a2:
            continue
    a0 |= ((254) and ((-64))) < (i16(18446744073709551615))
    return not (u8(a2))

@bpf_function
def fn3(a0: i16, a1: i16, a2: i16) -> u16:
    am[i32(hm.get(u64((-31))))] = u8(16)
    a2 = ai[(a0) >= (a1)]
    return ((a2) == (0x5)) + (a1)

@bpf_function(inline=False)
def fn4(a0: i16, a1: u32, a2: u64, a3: i16) -> i8:
    if ((a0) > (a1)) >> ((a3) - (7188283041397091128)):
        a3 |= 0x3
        a3 = (((32767) ^ (a2)) * ((127) + (9223372036854775807))) ^ (a0)
    a2 = not (a3)
    return ((a2) * (65535)) >= (((-81985529216486895)) < ((-9223372036854775808)) >= (a1))

@bpf_function
def fs5(s: S, x: u64) -> i32:
    x -= (((-2147483647)) if (x) else (x)) if (1) else (x)
    x = s.d
    return (57810) < ((s.e[1]) // (x)) < ((0x7fffffffffffffff) if (0x7fffffff) else (x))

@bpf_function(inline=False)
def fs6(s: S, x: u32) -> i32:
    x = 65535
    s.g = x
    return x

@iouring_program
def prog16(ctx: Ctx) -> int:
    v17: u64 = ((0xc16b) // (hk.get((am[(hk.get(9223372036854775808, 395273439)) + (ctx.user_data)]) and (1000)))) == (hm[0xffff])
    v18: u8 = v17
    for it19 in range(0):
        v18 += ctx.wait_nr
        am[(v17) != (128)] = 0x3
    w20: u32 = 0
    while w20 < 4:
        w20 += 2
        v17 = (v17) >> (am[v17])
        if (v18) % ((-0)):
            hm[(sm[~(hm.get(hm.get((w20) != (v18) == (v17), 31), 0))].e[3]) or (w20)] = u32(v17)
            copy_from_user(v18, ctx.user_data + 16)
        else:
            hk[v17] = (ctx.wait_nr) + (ai[(v18) - (((v17) in hk))])
            ai[(w20) if (v17) else (28686)] = fs5(S(), hk.get(v18))
    v18 = ctx.wait_nr
    v18 = v18
    return (v17) < (v18)

