"""Typing: Python AST -> typed IR (typed_ir.py), with located errors. builder.py walks a function;
expr, calls, arrays, loop (the bpf_ops language: regions, globals) and generators type what their
names say; type_names says a type as the author wrote it."""
