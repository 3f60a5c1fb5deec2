"""The BPF loader: bpf() syscalls, BTF and ELF reading, maps, programs (see docs/loader.md)."""
from .btf import Btf, BtfError, BtfExt, kernel_btf_id, vmlinux_btf
from .elf import ElfObjectError
from .externs import UnresolvedExtern
from .maps import GlobalData, Map, MapError, MissingKey
from .object import BpfObject, Program
from .sections import SECTION_TYPES, UnsupportedSection, section_type
from .structops import StructOps, StructOpsError
from .verifier import SourceLine

__all__ = ["BpfObject", "Program", "Map", "GlobalData", "MapError", "MissingKey", "Btf", "BtfExt",
           "BtfError", "ElfObjectError", "UnsupportedSection", "UnresolvedExtern", "StructOps",
           "StructOpsError", "SourceLine", "SECTION_TYPES", "section_type", "kernel_btf_id",
           "vmlinux_btf"]
