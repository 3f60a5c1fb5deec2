"""Regression (differential tier): fn3 (a BPF-to-BPF callee) always returns 0, so LLVM dropped
its return value and R0 still held a stack address: "cannot return stack pointer to the caller".
Generated (progen seed 50 size 1), the caller reduced."""
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
def fn1(a0: i8, a1: i16) -> u64:
    a1 = a0
    a1 &= a1
    return min((a1) or (4294967295), (a1) or (a0))

@bpf_function
def fn2(a0: i64, a1: i32, a2: u32) -> i64:
    a1 <<= max(~(a2), a0)
    a0 <<= ((a2) ^ (a1)) and ((-1))
    return u8((a0) and (15))

@bpf_function(inline=False)
def fn3(a0: u8, a1: i8) -> i16:
    hm[-(a0)] >>= (max(a0, a1)) << (65070)
    if a1:
        am[((-63)) + (am[(65536) * (a0)])] |= ((a0) >= ((-282302566215312148))) if ((sm[(63) * (0x4)].e[3]) and (a0)) else ((a0) ^ (1000))
        am[(hk[+(a1)]) + (a0)] <<= ((31) << (a1)) // (+(a0))
    else:
        a1 = (hm.get(a1)) // (hk.get((hm[(hk[(a1) * (a1)]) & ((-2791342954))]) + ((-9223372036854775807)), 2147483648))
        a0 &= ((255) ^ (a0)) if ((sm[(((32768) or (a0)) not in hk)].f) - (a0)) else ((a0) < (2246563283))
        am[(8) if (a1) else (a0)] <<= (((((9223372036854775807) ^ (a0)) in hk)) if (a0) else (a1)) if ((sm[(ai[hk.get(min(a0, a0), 1389457947)]) ^ (a0)].e[(a1) << (0x3f)]) < (65536)) else (65536)
    return i8((9223372036854775807) < (a1))

@bpf_function
def fs4(s: S, x: i64) -> i32:
    s.e = s.e
    x ^= ((x) >= (x)) * (x)
    return x

@bpf_function(inline=False)
def fs5(s: S, x: u16) -> i32:
    x = i16(((-65535)) >> (~(81985529216486895)))
    x -= x
    return x

@iouring_program
def p(ctx: Ctx) -> int:
    x: i16 = fn3(ctx.wait_nr, ctx.wait_idx)
    return x
