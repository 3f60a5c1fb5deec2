"""Regression (differential tier): in fn5, `range(min(((-127)) - (a1), 4))` was rewritten by LLVM
as `min(-a1, 131) - 127`, whose bound the verifier cannot know: "The sequence of 8193 jumps is too
complex". Generated (progen seed 1103 size 1), the caller reduced."""
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
def fn1(a0: i64, a1: i64) -> u32:
    for it2 in range(min(a1, 2)):
        if a1:
            break
    a0 += (min(1, a0)) % ((a1) % (a0))
    return u16(a1)

@bpf_function
def fn3(a0: i8, a1: i64) -> i8:
    for it4 in range(2):
        hm[(hm.get(-(a0), 33)) if ((-81985529216486895)) else (it4)] = a1
        ai[81985529216486895] = bool(hm.get((256) // (a1)))
        hm[(a1) if (a1) else (a1)] |= ((a0) in hk)
    if u64((a0) * (5)):
        a0 = am[(a0) * (a0)]
        a1 = 0 if ((a0) in hm) else 1
        ai[(64) < (a1) > (3)] = i64(((256) if (a1) else (a0)) >= (a0))
    return ((hk.get(a0, 16)) == (64)) << ((a0) * ((-32768)))

@bpf_function(inline=False)
def fn5(a0: i16, a1: i32, a2: i8) -> u64:
    a1 %= ((9) % (0x3e8)) if ((a2) // (a1)) else ((a2) - ((-235)))
    for it6 in range(min(((-127)) - (a1), 4)):
        a1 >>= (a1) > (it6) > (a1)
        if (355585816) << (a2):
            break
        if (it6) <= (hk.get(hk[(-203)], 0x21)) > (a0):
            break
    return ((0) * (a2)) * (0x7fffffff)

@bpf_function
def fs7(s: S, x: u32) -> i32:
    x = ((x) * (x)) * (((x) <= (s.e[3]) == (127)) * ((-63)))
    w8: i64 = 0
    while w8 < 1:
        w8 += 2
        if (140) << (2147483648):
            break
        if (s.c) >> ((-146)):
            continue
    return ~((s.e[0]) if (x) else (780014763272243041))

@bpf_function(inline=False)
def fs9(s: S, x: u64) -> i32:
    x -= 7
    x = x
    return ((250) + (211)) % ((x) + (x))

@iouring_program
def p(ctx: Ctx) -> int:
    return fn5(ctx.wait_nr, ctx.wait_idx, ctx.user_data)
