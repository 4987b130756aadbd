"""Kernel-side protection of test cells, run inside the grading kernel.

The grader calls ``install(modules)`` as soon as the kernel starts, before any cell of the
submission runs: it imports the modules the tests use (``BASE_MODULES`` and those the
assignment's setup and test cells import) and takes a snapshot of them and of IPython's
execution machinery (input and AST transformers, events, the shell's and the kernel's
methods, tracebacks, trace hooks). Before each test cell the grader calls ``restore()``, which puts every
snapshotted object back, re-runs the notebook's read-only setup code in the user namespace
(so names such as ``check_equal`` and ``np`` are the real ones) and returns a description of
each thing the submission had changed, so an instructor can look. The grader calls both
through ``user_expressions`` of an execute request, which IPython evaluates without passing
them through input transformers.

This closes the easy ways for a submission to make tests pass without doing the work. Code
that runs in the same process can in principle still reach anything in it (for example a
background thread that keeps re-patching); the sandbox confines such a submission to its
own grade, and the findings flag it for a person.
"""
from __future__ import annotations

import importlib
import sys
import threading
import types

BASE_MODULES = ["builtins", "math", "numpy", "numpy.testing", "pandas", "pandas.testing", "course.checks"]
SHELL_METHODS = ["run_cell", "run_cell_async", "_run_cell", "transform_cell", "transform_ast", "run_ast_nodes",
                 "run_code", "showtraceback", "_showtraceback", "showsyntaxerror", "should_run_async", "user_expressions"]
KERNEL_METHODS = ["do_execute", "execute_request", "_publish_execute_input"]
BUILTINS_SET_BY_IPYTHON = {"get_ipython", "display", "exit", "quit"}
# State a module keeps for itself and honest code changes (a temporary folder, a plotting
# backend): put back like everything else, but not reported.
HONEST_CHANGES = {"tempfile.tempdir", "tempfile._name_sequence", "matplotlib.pyplot._backend_mod"}

_snapshot: dict | None = None


def _shell():
    from IPython import get_ipython

    return get_ipython()


def _class_attributes(classes, names):
    return {(cls, name): cls.__dict__[name] for cls in classes for name in names if name in cls.__dict__}


def install(modules: list[str] = ()) -> str:
    """Import ``BASE_MODULES`` and ``modules`` and snapshot them and the kernel's state; returns 'installed'."""
    global _snapshot
    shell = _shell()
    guarded = []
    for name in dict.fromkeys([*BASE_MODULES, *modules]):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module the tests import but this environment lacks fails in the test itself
            continue
        guarded.append(name)
    _settle_lazy_state(guarded)
    manager = shell.input_transformer_manager
    _snapshot = {
        "modules": {name: sys.modules[name] for name in guarded},
        "module_dicts": {name: dict(vars(sys.modules[name])) for name in guarded},
        "class_attributes": {
            **_class_attributes(type(shell).__mro__, SHELL_METHODS),
            **_class_attributes(type(shell.kernel).__mro__, KERNEL_METHODS),
            **_class_attributes(type(shell.events).__mro__, ["trigger"]),
        },
        "instance_names": set(vars(shell)),
        "lists": {
            "input_transformers_cleanup": list(shell.input_transformers_cleanup),
            "input_transformers_post": list(shell.input_transformers_post),
            "ast_transformers": list(shell.ast_transformers),
            "cleanup_transforms": list(manager.cleanup_transforms),
            "line_transforms": list(manager.line_transforms),
            "token_transformers": list(manager.token_transformers),
        },
        "events": {name: list(callbacks) for name, callbacks in shell.events.callbacks.items()},
        "sys_hooks": {"excepthook": sys.excepthook, "displayhook": sys.displayhook},
    }
    return "installed"


def _settle_lazy_state(modules: list[str]) -> None:
    """Let pyplot pick its backend and install its IPython hook now, so that the first honest plot
    does not look like a submission registering IPython callbacks."""
    if "matplotlib.pyplot" in modules:
        import matplotlib.pyplot

        matplotlib.pyplot.close(matplotlib.pyplot.figure())


def _same(current, original) -> bool:
    if current is original:
        return True
    # IPython hands out a new bound method each time; compare those by function and owner.
    return isinstance(current, types.MethodType) and isinstance(original, types.MethodType) and \
        current.__func__ is original.__func__ and current.__self__ is original.__self__


def restore(setup: str = "") -> list[str]:
    """Put back everything ``install`` snapshotted, then run ``setup`` (the read-only setup cells) in the
    user namespace, so the names tests use are the real ones; describe each thing the submission had changed."""
    if _snapshot is None:
        return ["the test guard was not installed before the submission ran"]
    shell = _shell()
    findings: list[str] = []
    sys.settrace(None)
    sys.setprofile(None)
    threading.settrace(None)
    threading.setprofile(None)
    for name, module in _snapshot["modules"].items():
        if sys.modules.get(name) is not module:
            findings.append(f"replaced the module {name} in sys.modules")
            sys.modules[name] = module
        namespace = vars(module)
        for key, value in _snapshot["module_dicts"][name].items():
            current = namespace.get(key, _snapshot)
            if not _same(current, value):
                if f"{name}.{key}" not in HONEST_CHANGES and \
                        not (name == "builtins" and (key in BUILTINS_SET_BY_IPYTHON or key.startswith("__"))):
                    findings.append(f"changed {name}.{key}")
                namespace[key] = value
    for (cls, name), value in _snapshot["class_attributes"].items():
        if cls.__dict__.get(name) is not value:
            findings.append(f"changed {cls.__name__}.{name}")
            setattr(cls, name, value)
    for name in set(vars(shell)) - _snapshot["instance_names"]:
        if name in SHELL_METHODS:
            findings.append(f"replaced the shell's {name}")
            delattr(shell, name)
    manager = shell.input_transformer_manager
    owners = {"input_transformers_cleanup": shell, "input_transformers_post": shell, "ast_transformers": shell,
              "cleanup_transforms": manager, "line_transforms": manager, "token_transformers": manager}
    for name, original in _snapshot["lists"].items():
        current = getattr(owners[name], name)
        if list(current) != original or type(current) is not list:
            findings.append(f"changed IPython's {name}")
            setattr(owners[name], name, list(original))
    for event, callbacks in _snapshot["events"].items():
        if shell.events.callbacks.get(event) != callbacks:
            findings.append(f"registered IPython '{event}' callbacks")
            shell.events.callbacks[event] = list(callbacks)
    for name, hook in _snapshot["sys_hooks"].items():
        if getattr(sys, name) is not hook:
            findings.append(f"replaced sys.{name}")
            setattr(sys, name, hook)
    if setup:
        exec(compile(setup, "<read-only setup cell>", "exec"), shell.user_ns)  # noqa: S102 - the source's own setup code
    return findings
