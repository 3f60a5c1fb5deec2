"""Regression (differential tier): the bounds check of `t100[u64(v96)]` tested the i32 the
index was sign-extended from, the address used the i64: "math between fp pointer and register with
unbounded min value". A generated module (progen seed 2 of its first version), reduced."""
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
def fn1(a0: u16) -> u16:
    for i2 in range(min((32) << (a0), 3)):
        if 1000:
            break
        hm[65535] = ((a0) != (a0) in hk)
        ai[(a0) ^ (hm[not (a0)])] = a0
    a0 = (((0xc) + (3)) + (a0)) % (2)
    return ((a0) + ((i32(a0) in hk)) not in hm)

@bpf_function
def fn3(a0: u32) -> u8:
    if a0:
        am[(a0) << (65535)] = ((((-65)) // (9223372036854775807)) - (((-2196881536)) if (a0) else (hk.get((a0) or (a0))))) ^ ((a0) ^ (12))
        fn1((-5))
        a0 |= a0
    else:
        fn1(a0)
    ai[9223372036854775808] = 0 if (127) >> (a0) in hk else 1
    return (2147483648) >= ((a0) or (0x41)) >= ((sm[(32) & (a0)].h) ^ (a0))

@bpf_function(inline=False)
def fn4(a0: i32) -> u32:
    if (not (a0)) ^ (max(136, a0)):
        a0 = ((min(am[(1766224295593867622) if (9223372036854775808) else (a0)], a0)) if (+(a0)) else (((-32768)) > (a0))) << (i8(9223372036854775807))
        a0 <<= (not ((-256))) | ((a0) and (a0))
        am[(a0) - (a0)] = a0
    for i5 in range(2):
        ai[(i5) | (hm.get((-65535), 68))] &= ((a0) if (i5) else (a0)) <= ((0x70d3) & ((-247)))
        a0 = a0
    return -((31) // (7))

@bpf_function
def fs6(s: S, x: i16) -> i32:
    x = (x) & (x)
    x = ((i32(x)) < (-(x))) - (((9223372036854775807) >= ((-33))) * (s.e[x]))
    return (s.b) << (x)

@bpf_function(inline=False)
def fs7(s: S, x: u16) -> i32:
    w8: u8 = 0
    while w8 < 0:
        w8 += 1
        s.e = Array[i32, 4]()
    x //= x
    return (i8(x)) | ((s.b) if (x) else ((-63)))

@iouring_program
def prog(ctx: Ctx) -> int:
    v95: i64 = i32(max(ctx.wait_idx, (-3710931769)))
    v96: u64 = (v95) if (32768) else (min(ctx.wait_nr, hm[v95]))
    v97: i32 = v96
    v98: u16 = (-15196)
    s99 = S()
    t100: Array[u16, 5]
    if (sm[(v98) + (v95)].a) | (ctx.user_data):
        return sm[fn1(sm[min(ctx.wait_nr, ai[min(18446744073709551615, v95)])].g)].e[3]
    if (s99.h) % ((ctx.user_data) ^ (v96)):
            if fs7(s99, t100[1]):
                return (v98) * ((v97) + ((u8(ctx.wait_idx) not in hm)))
    if 4484678818477287447:
            ctx.wait_idx = -(((s99.d) ^ (v98)) // (ctx.user_data))
    return (i64((v97) or (v98))) + ((u16(v97)) >> ((v98) != (t100[u64(v96)])))
