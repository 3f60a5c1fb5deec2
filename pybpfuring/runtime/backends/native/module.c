/* module.c: makes the native loop's shared object a CPython extension module
 * (pybpfuring.runtime.backends.native._loop), built by setup.py at package build time. The module itself is
 * empty: Python reaches the loop through ctypes (build.py), as with the compiled-at-first-use copy. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef loop_module = {
    PyModuleDef_HEAD_INIT, "_loop",
    "The native event loop of pybpfuring's emulated backend (used through ctypes).", -1, NULL,
};

PyMODINIT_FUNC PyInit__loop(void) { return PyModule_Create(&loop_module); }
