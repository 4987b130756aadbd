"""The test guard: keeps a submission's code from changing how the tests judge it.

The grader loads it into every grading kernel before any cell of the submission runs
(``install``) and consults it right before and right after each test cell, through user
expressions that leave a signed answer in ``VERDICTS``. Each answer carries an HMAC made
with a key only the grader and the guard know, so no code in the kernel can forge one; a
missing or forged answer costs the test cell its points.

``install`` loads a *private* copy of this module: its functions run in a namespace, with a
copy of ``builtins``, that no module holds, so nothing a submission can reach
(``sys.modules``, ``builtins``, this module as imported) changes what the guard does. What
the private copy calls from other modules is bound when it loads, while the kernel is still
pristine, and it never calls code of the submission. It registers one PEP 578 audit hook,
which no code can remove. The hook:

- refuses, to code outside the Python installation, the environment and the course package
  (the notebook's cells and anything they compile): new audit hooks, trace and profile
  hooks (but those of ``course.checks.check_does_not_call`` and ``lines_of_own_code_run``), ``ctypes``, the garbage collector's
  object introspection, other threads' frames, CPython's test modules, replacing the code,
  defaults or keyword defaults of a library's functions, and making code or loading bytecode
  that claims a library's file name (so "code from a library" cannot be faked);
- never lets a frame of the guard be reached through a traceback or ``sys._getframe``;
- watches each test cell: it must be compiled exactly as the grader sent it, and every
  statement of it must run (the grader appends a marker statement, which runs only when no
  statement before it raised); before each statement the names the setup cell imports are
  bound again in the notebook's namespace.

Before a test cell: every dictionary of the test machinery (the module, class and function
dictionaries, keyword defaults and closure cells of every module loaded from the Python
installation, the environment and the course package, and ``sys.modules``) is compared with
what it held at install and put back, as are IPython's transformers, event callbacks and
the shell's and kernel's methods; the setup cell's names are bound again; and code of the
submission that could still run by itself is looked for (threads, signal handlers, interval
timers, garbage-collector callbacks, finalizers, callbacks and tasks waiting on the kernel's
event loop). After the test cell: anything that changed while it ran, even if changed back
(CPython 3.11's dictionary version tags count every write), a refused attempt, code left
running, or a statement that did not run makes the grader score that cell 0.

What it cannot see is in docs/instructors.md: writes to the kernel's memory that bypass
Python (NumPy's array interface at a raw address, say), a closure cell changed and changed
back while a test runs, and changes to objects that are data rather than code.
"""
from __future__ import annotations

import _hashlib
import _signal
import _thread
import asyncio
import builtins
import ctypes
import functools
import gc
import importlib.machinery
import importlib.util
import operator
import os
import sys
import types
import weakref

# The grader reads answers from here, right after the guard wrote them: VERDICTS.pop(trigger).
VERDICTS: dict[str, str] = {}

# The methods the dataclasses module writes (and compiles as "<string>") for a dataclass: a library's
# dataclass instance stored in a library's module is the library's own state, not code of the submission.
DATACLASS_METHODS = frozenset({"__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__",
                               "__lt__", "__le__", "__gt__", "__ge__"})
BASE_MODULES = ["builtins", "math", "numpy", "numpy.testing", "pandas", "pandas.testing", "course.checks"]
SHELL_METHODS = ["run_cell", "run_cell_async", "_run_cell", "transform_cell", "transform_ast", "run_ast_nodes",
                 "run_code", "showtraceback", "_showtraceback", "showsyntaxerror", "should_run_async", "user_expressions"]
KERNEL_METHODS = ["do_execute", "execute_request", "_publish_execute_input"]
MARKER_NAME = "__course_guard__"
NONCE_PLACEHOLDER = "course-guard-nonce"
# Entries that the kernel, IPython or a library change honestly while cells run: never reported (and
# compared as bound methods, since IPython hands out a new one each time).
VOLATILE = {
    "sys": frozenset({"excepthook", "displayhook", "last_type", "last_value", "last_traceback", "last_exc",
                      "stdout", "stderr", "stdin", "ps1", "ps2", "ps3"}),
    "builtins": frozenset({"input", "get_ipython", "display", "exit", "quit", "_", "__", "___"}),
    "getpass": frozenset({"getpass"}),
    "tempfile": frozenset({"tempdir", "_name_sequence"}),
    "matplotlib.pyplot": frozenset({"_backend_mod"}),
}
# Function attributes a library writes on first use: pyplot's switch_backend copies the backend's signatures.
VOLATILE_FUNCTION_ATTRIBUTES = {"matplotlib.pyplot": frozenset({"__signature__"})}
# Not watched: the notebook's own namespace, and warnings, whose catch_warnings swaps filters in and out.
NOTEBOOK_MODULES = ("__main__", "__mp_main__")  # where a class defined in a notebook cell says it comes from
UNWATCHED_MODULES = frozenset({*NOTEBOOK_MODULES, "warnings"})
CLASS_ADDITIONS = frozenset({"__slotnames__"})  # copyreg caches this on a class it pickles or copies
TEST_MODULES = frozenset({"_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase", "_xxsubinterpreters",
                          "_xxtestfuzz", "_testimportmultiple", "_testclinic", "_ctypes_test"})
EVENTS = frozenset({
    "sys.addaudithook", "sys.settrace", "sys.setprofile", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "sys._current_frames", "sys._getframe", "object.__setattr__", "object.__getattr__", "compile", "code.__new__",
    "marshal.loads", "marshal.load", "open", "import", "exec",
})
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
CODE_ATTRIBUTES = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
STRICT, STRICT_CONTENT, LENIENT = 2, 1, 0  # how closely a dictionary of the machinery is watched
INTROSPECTION = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames"})
TAG_OFFSET = 24  # CPython 3.11, 64-bit: ob_refcnt, ob_type, ma_used, then ma_version_tag (PEP 509)
IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE
SIGNALS = range(1, _signal.NSIG)
ITIMERS = (_signal.ITIMER_REAL, _signal.ITIMER_VIRTUAL, _signal.ITIMER_PROF)


def install(config: dict) -> str:
    """Load a private copy of this module into the kernel and start guarding (``config`` comes from the grader)."""
    spec = importlib.util.spec_from_file_location("course.grader.guard.private", __file__)
    private = importlib.util.module_from_spec(spec)
    private.__builtins__ = dict(vars(builtins))
    spec.loader.exec_module(private)
    private._start(config, VERDICTS)
    return "installed"


def marker(nonce: str) -> str:
    """The statements the grader appends to a test cell: they run only if no statement before them raised."""
    return f"\n{MARKER_NAME} = {nonce!r}\ndel {MARKER_NAME}\n"


def trigger_expression(trigger: str) -> str:
    """The user expression that makes the guard run the check ``trigger`` names and returns its signed answer."""
    return f"__import__('course.grader.guard', fromlist=['VERDICTS']).VERDICTS.pop({trigger!r}, None)"


def sign(key: bytes, text: str) -> str:
    """The hex HMAC-SHA256 of ``text`` under ``key``, as the guard and the grader compute it."""
    return _hashlib.hmac_digest(key, text.encode(), "sha256").hex()


# ---------------------------------------------------------------------------------------------
# Everything below runs only in the private copy. What it uses from other modules is bound here,
# when the copy loads: a submission may rebind module attributes later, never these names.
_getframe = sys._getframe
_current_frames = sys._current_frames
_get_ident = _thread.get_ident
_getsignal = _signal.getsignal
_setsignal = _signal.signal
_getitimer = _signal.getitimer
_setitimer = _signal.setitimer
_get_referents = gc.get_referents
_hmac_digest = _hashlib.hmac_digest
_addaudithook = sys.addaudithook
_type_setattr = type.__setattr__
_type_delattr = type.__delattr__
_type_dict = type.__dict__["__dict__"]
_realpath = os.path.realpath  # at install only: at check time a library's Python code could have been changed
_type_flags = type.__dict__["__flags__"].__get__
_type_mro = type.__dict__["__mro__"].__get__
_FunctionType = types.FunctionType
_MethodType = types.MethodType
_ModuleType = types.ModuleType
_CodeType = types.CodeType
_CoroutineType = types.CoroutineType
_BUILTIN_CALLABLES = (types.BuiltinFunctionType, types.BuiltinMethodType, types.MethodWrapperType,
                      types.WrapperDescriptorType, types.MethodDescriptorType)
_partial = functools.partial
_staticmethod, _classmethod = staticmethod, classmethod
_ModuleSpec = importlib.machinery.ModuleSpec
_getattribute = object.__getattribute__
_Handle, _TimerHandle, _Task, _Info = asyncio.events.Handle, asyncio.events.TimerHandle, asyncio.Task, weakref.finalize._Info
_property = property
# Bulk reads in C (map over attrgetter): the checks read tens of thousands of tags and attributes.
_value_of, _dict_of, _contents_of = (operator.attrgetter(name) for name in ("value", "__dict__", "cell_contents"))
_is_not = operator.is_not
# Slots read through their own descriptors, which no change to the classes can replace.
_HANDLE_CALLBACK, _HANDLE_ARGS, _HANDLE_CANCELLED = (asyncio.events.Handle.__dict__[name]
                                                      for name in ("_callback", "_args", "_cancelled"))
_INFO_FUNC, _INFO_ARGS = (weakref.finalize._Info.__dict__[name] for name in ("func", "args"))
_ctypes_folder = os.path.dirname(ctypes.__file__) + "/"
_MISSING = object()


class _Tag(ctypes._SimpleCData):
    """A view of a dictionary's version tag (a private class over ctypes' immutable C base)."""

    _type_ = "Q"


def _tag_of(d: dict) -> _Tag:
    return _Tag.from_address(id(d) + TAG_OFFSET)


_S: dict = {}  # the guard's state, filled by _start


def _start(config: dict, verdicts: dict) -> None:
    """Snapshot the test machinery and the kernel, then register the audit hook."""
    _check_version_tags()
    course_package = os.path.dirname(os.path.dirname(__file__))
    roots = {path for folder in (sys.prefix, sys.base_prefix, course_package)
             for path in (os.path.abspath(folder), _realpath(folder))}
    _S.update(verdicts=verdicts, key=bytes.fromhex(config["key"]), roots=tuple(root + "/" for root in sorted(roots)),
              trusted_files={}, busy=set(), refused=[], last_refusal="", window=None, used=set())
    _import_modules(config["modules"])
    _S["test_modules"] = frozenset([*BASE_MODULES, *config["modules"]])
    _S["machinery"] = _machinery_names(config["names"])
    _S["tests"] = [_expected_test(source) for source in config["tests"]]
    _snapshot_dictionaries(_strict_modules())
    _snapshot_kernel()
    bootstrap = sys.modules["importlib._bootstrap"]
    _S["module_loading"] = frozenset({bootstrap._load_unlocked.__code__, bootstrap._exec.__code__})
    checks = sys.modules["course.checks"]
    _S["tracing_checks"] = frozenset({checks.check_does_not_call.__code__, checks.lines_of_own_code_run.__code__})
    _S["guard_codes"] = _codes_of(globals())
    _S["audit_code"] = _audit.__code__
    _make_undumpable()
    _addaudithook(_audit)


def _check_version_tags() -> None:
    probe = {}
    tag = _tag_of(probe)
    first = tag.value
    probe["x"] = first
    second = tag.value
    probe["x"] = first  # the same object again: CPython 3.11 keeps the tag
    if second == first or tag.value != second:
        raise RuntimeError("dictionary version tags do not behave as in CPython 3.11, which the guard needs")


def _import_modules(names: list[str]) -> None:
    import importlib

    for name in dict.fromkeys([*BASE_MODULES, *names]):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module the tests import but this kernel lacks fails in the test itself
            continue
    if "matplotlib.pyplot" in sys.modules:
        # pyplot picks its backend and installs its IPython hook on first use: let that happen now,
        # so that the first honest plot does not look like a change to the grading environment.
        pyplot = sys.modules["matplotlib.pyplot"]
        pyplot.close(pyplot.figure())


def _machinery_names(names: list[list]) -> dict:
    """What the setup cell's imports bind: name -> the module, function or class itself."""
    bound = {}
    for name, module, attribute in names:
        try:
            bound[name] = sys.modules[module] if attribute is None else getattr(sys.modules[module], attribute)
        except (KeyError, AttributeError):
            continue
    return bound


def _expected_test(source: str) -> tuple[str, int]:
    """A test cell with its marker, as IPython will compile it, and how many statements it has."""
    import ast

    from IPython import get_ipython

    text = get_ipython().transform_cell(source + marker(NONCE_PLACEHOLDER))
    return text, len(ast.parse(text).body)


def _trusted(filename) -> bool:
    """Whether code from ``filename`` is the Python installation's, the environment's or the course package's.

    Judged on the name alone: a Python source file (not a template a library compiles, say) in those
    folders, without ``.`` or ``..`` in its path. Making or loading code under such a name is refused
    to the submission, and the submission cannot write into those folders.
    """
    if type(filename) is not str:
        return False
    cache = _S["trusted_files"]
    known = cache.get(filename)
    if known is None:
        known = cache[filename] = filename.startswith("<frozen ") or (filename.endswith(".py") and _installed(filename))
    return known


def _installed(path: str) -> bool:
    """Whether ``path`` lies in the Python installation, the environment or the course package (judged on the name)."""
    return path.startswith(_S["roots"]) and "/./" not in path and "/../" not in path


# ---- the dictionaries of the test machinery ------------------------------------------------

def _snapshot_dictionaries(strict_modules: set[str]) -> None:
    """Record every module, class and function dictionary (and keyword defaults and closures) of trusted code.

    Each gets a level. STRICT (the checks, builtins, math, what the checks call, IPython's and the
    kernel's machinery): any write counts, even one undone before the next check. STRICT_CONTENT (the
    modules the tests import): any change counts. LENIENT (the rest of the libraries, which honestly
    change their own caches, flags and wrappers at run time): only the submission's own code put there counts.
    """
    entries, closures, seen, strict_functions = [], [], set(), set()

    def watch(label, d, kind, owner, level, volatile=frozenset()):
        if id(d) not in seen:
            seen.add(id(d))
            entries.append((label, d, _tag_of(d), dict(d), kind, owner, volatile, level))

    def function(label, f, level):
        if type(f) in (_staticmethod, _classmethod):
            f = f.__func__
        if type(f) is not _FunctionType or id(f) in seen or not _trusted(f.__code__.co_filename):
            return
        seen.add(id(f))
        if level == STRICT:
            strict_functions.add(f)
        if level != LENIENT:  # the attributes of the rest of the libraries' functions are theirs to change
            watch(label, f.__dict__, "function", f, level, VOLATILE_FUNCTION_ATTRIBUTES.get(label.rpartition(".")[0], frozenset()))
        if f.__kwdefaults__ is not None:  # no library changes these in place: any change counts
            watch(label, f.__kwdefaults__, "keyword defaults", f, max(level, STRICT_CONTENT))
        # An empty cell (a name the function will bind later) has nothing to compare yet.
        closures.extend((label, number, cell, _cell_contents(cell), level) for number, cell in enumerate(f.__closure__ or ())
                        if _cell_contents(cell) is not _MISSING)

    def level_of(name):
        return STRICT if name in strict_modules else STRICT_CONTENT if name in _S["test_modules"] else LENIENT

    # The strictest first: a function found in several modules is watched as closely as its strictest home asks.
    for name, module in sorted(sys.modules.items(), key=lambda item: -level_of(item[0])):
        if not isinstance(module, _ModuleType) or name in UNWATCHED_MODULES or not _module_trusted(module):
            continue
        level = level_of(name)
        watch(name, module.__dict__, "module", module, level, VOLATILE.get(name, frozenset()))
        for key, value in list(module.__dict__.items()):
            if isinstance(value, type):
                members = None if _type_flags(value) & IMMUTABLE_TYPE else _class_dict(value)
                if members is not None and id(members) not in seen:
                    label = f"{value.__module__}.{value.__qualname__}"
                    class_level = STRICT if value.__module__ in strict_modules else LENIENT
                    watch(label, members, "class", value, class_level)
                    for attribute, member in list(members.items()):
                        function(f"{label}.{attribute}", member, class_level)
            else:
                function(f"{name}.{key}", value, level)
    _S.update(entries=entries, tag_views=[entry[2] for entry in entries], tags=[entry[2].value for entry in entries],
              function_dicts=tuple(zip(*[(entry[0], entry[1], entry[5]) for entry in entries if entry[4] == "function"])),
              closures=closures, cells=[item[2] for item in closures], cell_contents=[item[3] for item in closures],
              strict_functions=strict_functions, builtin_names=frozenset(vars(builtins)), modules=sys.modules,
              modules_copy=dict(sys.modules))


def _strict_modules() -> set[str]:
    """The modules whose every write counts: the course's, builtins and math, the modules of the functions the checks
    call, and IPython's and the kernel's."""
    strict = {"builtins", "math"}
    for name, module in list(sys.modules.items()):
        if name == "course" or name.startswith(("course.", "IPython.", "ipykernel.")):
            strict.add(name)
    checks = sys.modules["course.checks"]
    numpy = sys.modules["numpy"]
    for code in _codes_of(vars(checks)):
        for called in code.co_names:
            for namespace in (vars(checks), vars(numpy)):
                value = namespace.get(called)
                if type(value) is _FunctionType:
                    strict.add(value.__globals__.get("__name__"))
    return strict


def _module_trusted(module) -> bool:
    path = module.__dict__.get("__file__")
    return path is None or type(path) is str and _installed(path)


def _class_dict(cls) -> dict | None:
    """A class's own dictionary (``cls.__dict__`` is a read-only proxy of it)."""
    proxy = _type_dict.__get__(cls, type)
    return next((item for item in _get_referents(proxy) if type(item) is dict), None)


def _cell_contents(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return _MISSING


def _same(current, original) -> bool:
    return current is original or (type(current) is _MethodType and type(original) is _MethodType and
                                   current.__func__ is original.__func__ and current.__self__ is original.__self__)


def _only_names(d: dict) -> bool:
    """Drop keys that are not strings from ``d`` (a lookup could run a submission's ``__eq__`` on them); whether any were there."""
    if all(type(key) is str for key in list(d)):
        return False
    kept = [(key, value) for key, value in list(d.items()) if type(key) is str]
    d.clear()
    d.update(kept)
    return True


def _describe(entry, keys: list[str]) -> str:
    label, kind = entry[0], entry[4]
    if len(keys) == 1 and kind in ("module", "class"):
        return f"changed {label}.{keys[0]}"
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    return {"module": f"changed {shown} in {label}", "class": f"changed {shown} in {label}",
            "function": f"changed the attributes {shown} of {label}",
            "keyword defaults": f"changed the keyword defaults {shown} of {label}"}[kind]


def _check_entry(entry) -> tuple[list[str], bool]:
    """Compare one dictionary with its snapshot and put it back; describe what had changed, and say whether anything had."""
    label, d, _, snapshot, kind, owner, volatile, level = entry
    findings = [f"put keys that are not names into {label}"] if kind != "class" and _only_names(d) else []
    changed = [key for key, value in list(d.items())
               if key not in volatile and not _same(value, snapshot.get(key, _MISSING))]
    changed += [key for key in snapshot if key not in d and key not in volatile]
    if not changed:
        return findings, bool(findings)
    tampered = []
    for key in changed:
        value = d.get(key, _MISSING)
        honest = not _submission_code(value) if level == LENIENT else \
            key not in snapshot and not _addition_matters(kind, label, key, value)
        if honest:  # a library's own cache, flag or wrapper, or a submodule imported later: machinery from now on
            if value is _MISSING:
                del snapshot[key]
            else:
                snapshot[key] = value
            continue
        tampered.append(key)
        if kind == "class":
            if _metaclass_intercepts(owner, key):
                findings.append(f"changed the metaclass of {label}, so {label}.{key} could not be put back")
            elif key in snapshot:
                _type_setattr(owner, key, snapshot[key])
            else:
                _type_delattr(owner, key)
        elif key in snapshot:
            d[key] = snapshot[key]
        else:
            del d[key]
    return findings + ([_describe(entry, tampered)] if tampered else []), True


def _metaclass_intercepts(cls, key: str) -> bool:
    """Whether setting ``cls.key`` would run code of the submission: a data descriptor of it on the metaclass."""
    for meta in _type_mro(type(cls)):
        members = _class_dict(meta) if not _type_flags(meta) & IMMUTABLE_TYPE else None
        if members is not None and key in members and _submission_code(members[key]):
            return True
    return False


def _addition_matters(kind: str, label: str, key: str, value) -> bool:
    if kind == "module":
        # A submodule imported later is honest; another new global matters where it hides a builtin
        # (and any new builtin does).
        return type(value) is not _ModuleType and (key in _S["builtin_names"] or label == "builtins")
    return kind != "class" or key not in CLASS_ADDITIONS


def _submission_code(value) -> bool:
    """Whether ``value`` is code of the submission: its function, method, class, code or callable object."""
    if value is _MISSING:
        return False
    if type(value) is _CodeType:
        return not _trusted(value.co_filename)
    kind = type(value)
    if kind is _FunctionType or kind is _MethodType or kind is _partial:
        return not _trusted_callable(value)
    if kind is _property:
        return any(_submission_code(function) for function in (value.fget, value.fset, value.fdel) if function is not None)
    if kind is _staticmethod or kind is _classmethod:
        return _submission_code(value.__func__)
    cls = value if issubclass(kind, type) else kind
    if _type_flags(cls) & IMMUTABLE_TYPE:
        return False
    members = _class_dict(cls) or {}
    module = members.get("__module__")
    generated = DATACLASS_METHODS if "__dataclass_fields__" in members else frozenset()
    return type(module) is str and module in NOTEBOOK_MODULES or \
        any(type(member) is _FunctionType and not _trusted(member.__code__.co_filename) and
            not (member.__code__.co_filename == "<string>" and member.__code__.co_name in generated)
            for member in members.values())


def _check_dictionaries(while_testing: bool) -> list[str]:
    """Compare every watched dictionary with its snapshot, and its version tag with the last check; put back what changed."""
    findings, entries, tags, tag_views = [], _S["entries"], _S["tags"], _S["tag_views"]
    labels, dicts, functions = _S["function_dicts"]
    if any(map(_is_not, map(_dict_of, functions), dicts)):
        for label, d, function in zip(labels, dicts, functions):
            if function.__dict__ is not d:
                findings.append(f"replaced the attributes of {label}")
                function.__dict__ = d
    now = list(map(_value_of, tag_views))  # the fast path: one C comparison of two lists when nothing was written
    if now != tags:
        for number in [number for number, (value, seen) in enumerate(zip(now, tags)) if value != seen]:
            label, kind, level = entries[number][0], entries[number][4], entries[number][7]
            changes, changed = _check_entry(entries[number])
            findings += changes
            if not changed and while_testing and level == STRICT and not (kind == "module" and label in VOLATILE):
                findings.append(f"changed {label} and changed it back")
            tags[number] = tag_views[number].value
    closures, cells, contents_seen = _S["closures"], _S["cells"], _S["cell_contents"]
    try:
        unchanged = not any(map(_is_not, map(_contents_of, cells), contents_seen))
    except ValueError:  # a cell emptied
        unchanged = False
    changed_cells = [] if unchanged else \
        [number for number, cell in enumerate(cells) if _cell_contents(cell) is not contents_seen[number]]
    for number in changed_cells:
        label, cell_number, cell, contents, level = closures[number]
        current = _cell_contents(cell)
        if level == LENIENT and not _submission_code(current):
            closures[number] = (label, cell_number, cell, current, level)
            contents_seen[number] = current
            continue
        findings.append(f"changed the closure of {label}")
        cell.cell_contents = contents
    modules = _S["modules"]
    if _only_names(modules):
        findings.append("put keys that are not names into sys.modules")
    for name, module in _S["modules_copy"].items():
        if modules.get(name) is not module:
            findings.append(f"replaced the module {name} in sys.modules")
            modules[name] = module
    return findings


# ---- IPython, the kernel and code that runs by itself ---------------------------------------

def _snapshot_kernel() -> None:
    from IPython import get_ipython

    shell = get_ipython()
    manager = shell.input_transformer_manager
    lists = {"input_transformers_cleanup": shell.input_transformers_cleanup,
             "input_transformers_post": shell.input_transformers_post, "ast_transformers": shell.ast_transformers,
             "cleanup_transforms": manager.cleanup_transforms, "line_transforms": manager.line_transforms,
             "token_transformers": manager.token_transformers}
    loop = asyncio.get_event_loop()
    _S.update(
        shell=shell, user_ns=shell.user_ns, user_module=shell.user_module, shell_dict=shell.__dict__,
        lists=[(name, items, list(items)) for name, items in lists.items()],
        events=(shell.events.callbacks, [(event, items, list(items)) for event, items in shell.events.callbacks.items()]),
        methods=[(shell.__dict__, set(shell.__dict__), SHELL_METHODS, "the shell's"),
                 (shell.kernel.__dict__, set(shell.kernel.__dict__), KERNEL_METHODS, "the kernel's")],
        signals={number: handler for number in SIGNALS if (handler := _signal_handler(number)) is not _MISSING},
        gc_callbacks=(gc.callbacks, list(gc.callbacks)), finalizers=weakref.finalize._registry,
        loop_dict=loop.__dict__, ready=loop._ready, scheduled=loop._scheduled, tasks=asyncio.tasks._all_tasks.data,
    )


def _signal_handler(number: int):
    try:
        return _getsignal(number)
    except (ValueError, OSError):
        return _MISSING


def _same_list(items, original: list) -> bool:
    return type(items) is list and len(items) == len(original) and all(a is b for a, b in zip(items, original))


def _check_ipython() -> list[str]:
    """Put back IPython's transformers and event callbacks, and the shell's and kernel's methods."""
    findings = []
    shell_dict = _S["shell_dict"]
    _only_names(shell_dict)
    if shell_dict.get("_user_ns") is not _S["user_ns"] or shell_dict.get("user_module") is not _S["user_module"]:
        findings.append("replaced the notebook's namespace")
        shell_dict.update(_user_ns=_S["user_ns"], user_module=_S["user_module"])
    for name, items, original in _S["lists"]:
        if not _same_list(items, original):
            findings.append(f"changed IPython's {name}")
            items[:] = original
    callbacks, originals = _S["events"]
    _only_names(callbacks)
    for event, items, original in originals:
        if callbacks.get(event) is not items or not _same_list(items, original):
            findings.append(f"registered IPython '{event}' callbacks")
            items[:] = original
            callbacks[event] = items
    for namespace, names, methods, owner in _S["methods"]:
        _only_names(namespace)
        for name in methods:
            if name in namespace and name not in names:
                findings.append(f"replaced {owner} {name}")
                del namespace[name]
    return findings


def _check_machinery_names(used=frozenset()) -> list[str]:
    """Bind the setup cell's imported names again; describe those in ``used`` the notebook had bound to something else.

    A notebook may reuse a name such as ``check`` for its own data between tests: that is put right
    silently. Only a name the running test statement is about to use counts as tampering.
    """
    namespace = _S["user_ns"]
    findings = ["put keys that are not names into the notebook's namespace"] if _only_names(namespace) else []
    for name, value in _S["machinery"].items():
        if namespace.get(name, _MISSING) is not value:
            namespace[name] = value
            if name in used:
                findings.append(f"rebound {name}")
    return findings


def _names_used(code) -> frozenset:
    """The global names ``code`` and the functions and comprehensions inside it look up."""
    names, pending = set(), [code]
    while pending:
        code = pending.pop()
        names.update(code.co_names)
        pending += [constant for constant in code.co_consts if type(constant) is _CodeType]
    return frozenset(names)


def _running_code() -> list[str]:
    """Code of the submission that could still run by itself (stopped where that is possible)."""
    found = []
    if _thread_runs_submission():
        found.append("a thread is running code of the submission")
    for number, handler in _S["signals"].items():
        current = _getsignal(number)
        if current is not handler and not (type(current) is int and type(handler) is int and current == handler):
            found.append(f"a handler for signal {number} was installed")
            _setsignal(number, handler)
    for which in ITIMERS:
        if _getitimer(which) != (0.0, 0.0):
            found.append("an interval timer was started")
            _setitimer(which, 0)
    callbacks, original = _S["gc_callbacks"]
    if not _same_list(callbacks, original):
        found.append("a garbage-collector callback was registered")
        callbacks[:] = original
    if type(_S["finalizers"]) is not dict or any(
            type(info) is not _Info or not _trusted_callable(_INFO_FUNC.__get__(info), _INFO_ARGS.__get__(info))
            for info in list(_S["finalizers"].values())):
        found.append("a finalizer of the submission is waiting to run")
    if _loop_waits_for_submission():
        found.append("code of the submission is waiting on the kernel's event loop")
    return found


def _thread_runs_submission() -> bool:
    """Whether another thread has code of the submission on its stack.

    Threads of libraries (joblib's executor manager, an idle pool worker) run only trusted code;
    what they might do to the machinery while a test runs, the version tags show afterwards.
    """
    me = _get_ident()
    for ident, frame in _current_frames().items():
        while ident != me and frame is not None:
            if not _trusted(frame.f_code.co_filename):
                return True
            frame = frame.f_back
    return False


def _loop_waits_for_submission() -> bool:
    loop_dict, ready, scheduled = _S["loop_dict"], _S["ready"], _S["scheduled"]
    _only_names(loop_dict)
    if loop_dict.get("_ready") is not ready or loop_dict.get("_scheduled") is not scheduled:
        return True
    for handle in [*ready, *scheduled]:
        if type(handle) is not _Handle and type(handle) is not _TimerHandle:
            return True
        if not _HANDLE_CANCELLED.__get__(handle) and \
                not _trusted_callable(_HANDLE_CALLBACK.__get__(handle), _HANDLE_ARGS.__get__(handle)):
            return True
    for reference in list(_S["tasks"]):
        task = reference()
        if task is None:
            continue
        if type(task) is not _Task:
            return True
        coroutine = task.get_coro()
        if not task.done() and (type(coroutine) is not _CoroutineType or not _trusted(coroutine.cr_code.co_filename)):
            return True
    return False


def _trusted_callable(function, args=()) -> bool:
    """Whether calling ``function(*args)`` runs only trusted code, as far as can be told without running anything."""
    for _ in range(8):
        if type(function) is _MethodType:
            function = function.__func__
        elif type(function) is _partial:
            if type(args) is not tuple:
                return False
            args = (*function.args, *args)
            function = function.func
        else:
            break
    if type(function) is _FunctionType:
        return _trusted(function.__code__.co_filename)
    if any(type(function) is kind for kind in _BUILTIN_CALLABLES):
        # A builtin runs what it is given: exec(code) or map(submission_function, ...) run the submission's code.
        return type(args) is tuple and not any(
            (type(arg) is _CodeType and not _trusted(arg.co_filename)) or
            ((type(arg) is _FunctionType or type(arg) is _MethodType or type(arg) is _partial) and not _trusted_callable(arg))
            for arg in args)
    return _type_flags(type(function)) & IMMUTABLE_TYPE != 0


# ---- checks the grader asks for ----------------------------------------------------------

def _before(test: int, nonce: str) -> tuple[tuple, tuple]:
    """Before test cell ``test``: put the machinery back; report what had changed and what could still run."""
    findings = _check_dictionaries(False) + _check_ipython() + _check_machinery_names() + _take_refused()
    unsafe = _running_code()
    text, statements = _S["tests"][test]
    _S["window"] = {"text": text.replace(repr(NONCE_PLACEHOLDER), repr(nonce)).encode(), "statements": statements,
                    "nonce": nonce, "filename": None, "ran": 0, "marker": False, "findings": []}
    return tuple(dict.fromkeys(findings)), tuple(unsafe)


def _after(nonce: str) -> tuple[tuple, bool]:
    """After a test cell: what changed while it ran, and whether every statement of it ran as written."""
    window, _S["window"] = _S["window"], None
    if window is None or window["nonce"] != nonce:
        return ("the test guard was not told that this test was about to run",), False
    findings = window["findings"] + _check_dictionaries(True) + _check_ipython() + _take_refused()
    findings += [f"{what} while the test ran" for what in _running_code()]
    ran = window["filename"] is not None and window["marker"] and window["ran"] == window["statements"]
    return tuple(dict.fromkeys(findings)), ran


def _take_refused() -> list[str]:
    refused, _S["refused"] = _S["refused"], []
    return refused


def _answer(trigger: str) -> None:
    """Run the check ``trigger`` names (``phase-test-nonce-signature``) if the grader signed it; leave the signed answer."""
    body, _, signature = trigger.rpartition("-")
    phase, _, rest = body.partition("-")
    test, _, nonce = rest.partition("-")
    if trigger in _S["used"] or signature != _hmac_digest(_S["key"], body.encode(), "sha256").hex():
        return
    _S["used"].add(trigger)
    answer = repr((trigger, *(_before(int(test), nonce) if phase == "before" else _after(nonce))))
    _S["verdicts"][trigger] = answer + "|" + _hmac_digest(_S["key"], answer.encode(), "sha256").hex()


# ---- the audit hook -------------------------------------------------------------------------

def _audit(event: str, args: tuple) -> None:
    """The audit hook (PEP 578): refuse what no notebook may do, and watch each test cell run."""
    if event not in EVENTS and not event.startswith("ctypes."):
        return
    ident = _get_ident()
    busy = _S["busy"]
    if ident in busy:  # an event raised by the guard's own work
        return
    busy.add(ident)
    try:
        refusal = _judge(event, args)
        if refusal:
            _S["refused"].append(f"tried to {refusal}")
    finally:
        busy.discard(ident)
    if refusal:
        _S["last_refusal"] = f"grading does not allow a notebook to {refusal}"
        raise PermissionError(_S["last_refusal"])


def _judge(event: str, args: tuple) -> str | None:
    """Why ``event`` is refused, or None; also follows a running test cell."""
    if event == "exec":
        _watch_statement(args[0])
    elif event == "compile":
        return _judge_compile(*args[:2])
    elif event == "object.__getattr__":
        target, name = args
        if name in FRAME_ATTRIBUTES:
            frame = getattr(target, name)
            if frame is not None and frame.f_code in _S["guard_codes"]:
                # Refused to everyone (IPython's traceback display too): a trusted reader could hand the frame on.
                # IPython showing a refusal's traceback gets here: it shows the refusal's message instead.
                if _trusted(_audited_frame().f_code.co_filename):
                    raise PermissionError(_S["last_refusal"])
                return "look at the test guard's frames"
        if name == "__kwdefaults__" and _trusted(target.__code__.co_filename) and \
                not _trusted(_audited_frame().f_code.co_filename):
            return f"reach into the keyword defaults of {target.__qualname__}"
    elif event == "object.__setattr__":
        target, name, value = args
        if name in CODE_ATTRIBUTES and type(target) is _FunctionType and (
                target in _S["strict_functions"] or _trusted(target.__code__.co_filename) and
                any(_submission_code(item) for item in _values_of(value))):
            return f"replace {name} of {target.__module__}.{target.__qualname__}"
    elif event == "open":
        _judge_open(args[0])
    elif event == "sys._getframe":
        return "look at the test guard's frames" if args[0].f_code in _S["guard_codes"] else None
    elif event == "sys.addaudithook":
        return "add an audit hook"
    elif event in ("sys.settrace", "sys.setprofile"):
        return None if _audited_frame().f_code in _S["tracing_checks"] else \
            {"sys.settrace": "set a trace function", "sys.setprofile": "set a profile function"}[event]
    elif event == "import":
        return f"import {args[0]}" if args[0] in TEST_MODULES and _untrusted_on_stack() else None
    elif event in INTROSPECTION:
        return f"call {event}" if _untrusted_on_stack() else None
    elif event == "code.__new__":
        return "make code under a library's file name" if _trusted(args[1]) and _untrusted_on_stack() else None
    elif event in ("marshal.loads", "marshal.load"):
        return "load bytecode" if _untrusted_on_stack() and _module_being_loaded() is None else None
    elif event.startswith("ctypes."):
        return "use ctypes" if not _trusted(_first_frame_outside_ctypes().f_code.co_filename) else None
    return None


def _values_of(value) -> list:
    """A new ``__code__``, ``__defaults__`` or ``__kwdefaults__``, as the list of things it holds."""
    if type(value) is tuple:
        return list(value)
    if type(value) is dict:
        return list(value.values())
    return [value]


def _judge_open(path) -> None:
    """Bytecode from outside the installation could hold code claiming a library's file name: refuse to read it.

    Not reported: the import system then compiles the module's source, as it does when no bytecode exists.
    """
    path = path.decode(errors="replace") if type(path) is bytes else path
    if type(path) is str and path.endswith(".pyc") and not _trusted(path):
        raise PermissionError("grading reads no bytecode from outside the Python installation")


def _judge_compile(source, filename) -> str | None:
    if filename == "<string>" and type(source) is bytes and source.startswith(b"__import__('course.grader.guard'"):
        start = source.find(b".pop('") + 6
        _answer(source[start:source.find(b"'", start)].decode())
        return None
    window = _S["window"]
    if window is not None and type(source) is bytes and filename != "<>" and source == window["text"]:
        window["filename"] = filename
    if _trusted(filename) and _untrusted_on_stack() and _module_being_loaded() != filename:
        return "compile code under a library's file name"
    return None


def _watch_statement(code) -> None:
    """A test cell's statements run one by one: count them, and bind the setup's names again before each."""
    window = _S["window"]
    if window is None or type(code) is not _CodeType or code.co_filename != window["filename"]:
        return
    window["ran"] += 1
    if window["nonce"] in code.co_consts and MARKER_NAME in code.co_names:
        window["marker"] = window["ran"] == window["statements"] - 1
        return
    window["findings"] += [f"{finding} while the test ran" for finding in _check_machinery_names(_names_used(code))]


# ---- frames -------------------------------------------------------------------------------

def _audited_frame():
    """The frame of the code that raised the audit event being judged."""
    frame = _getframe(1)
    while frame.f_code is not _S["audit_code"]:
        frame = frame.f_back
    return frame.f_back


def _untrusted_on_stack() -> bool:
    frame = _audited_frame()
    while frame is not None:
        if not _trusted(frame.f_code.co_filename):
            return True
        frame = frame.f_back
    return False


def _first_frame_outside_ctypes():
    frame = _audited_frame()
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_ctypes_folder):
        frame = frame.f_back
    return frame


def _module_being_loaded() -> str | None:
    """The file of the module the import system is loading, if only trusted code stands between it and this event.

    Loaders of libraries (pytest's assertion rewriter, say) compile a library's modules under their own
    file names, even when a notebook's import started it: code they compile is what the file holds.
    """
    frame = _audited_frame()
    while frame is not None and _trusted(frame.f_code.co_filename):
        if frame.f_code in _S["module_loading"]:
            spec = frame.f_locals.get("spec")
            if type(spec) is not _ModuleSpec or "origin" in (_class_dict(_ModuleSpec) or {"origin": None}):
                return None  # a spec of another kind, or ModuleSpec given an "origin" of the submission's making
            origin = _getattribute(spec, "origin")
            return origin if type(origin) is str else None
        frame = frame.f_back
    return None


def _codes_of(namespace: dict) -> frozenset:
    codes, pending = set(), [value.__code__ for value in namespace.values() if type(value) is _FunctionType]
    while pending:
        code = pending.pop()
        codes.add(code)
        pending += [constant for constant in code.co_consts if type(constant) is _CodeType]
    return frozenset(codes)


def _make_undumpable() -> None:
    """Keep the submission's own child processes from reading or writing this process's memory."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass
