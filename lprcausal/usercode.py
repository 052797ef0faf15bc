"""User code by import path: find it, identify it, load it.

A model factory or dataset loader is named ``package.module:attr`` (an importable
module) or ``path/to/file.py:attr`` (a Python file; a relative path is looked up next
to the study file, else in the working directory). Its identity, recorded in the run
description and so in the run id, is a :class:`~lprcausal.config.CodeRef`: the SHA-256
of the source file that defines ``attr`` and, for an installed package, its name and
version. Only that one file is hashed: code it imports from elsewhere is identified
by the package version (or not at all, for a sibling file of a loose script).

Files are loaded from their text under a module name derived from their hash, so an
edited file is a new module and a run can never be built from code other than the
code its id names: building checks the file's hash against the recorded one.
Dask workers that cannot see the file get its text shipped with the task
(:func:`shipped_sources` / :func:`register_sources`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from lprcausal.config import CodeRef, DataConfig, FindSpec, ModelConfig
from lprcausal.errors import LprError

_MODULES: dict[str, types.ModuleType] = {}  # sha256 -> module loaded from a file's text
_SHIPPED: dict[str, str] = {}  # sha256 -> file text received by a Dask worker


def is_import_path(name: str) -> bool:
    """True for ``module:attr`` / ``file.py:attr`` (built-in names have no colon)."""
    return isinstance(name, str) and ":" in name


def split_import_path(name: str, what: str) -> tuple[str, str, bool]:
    """``(target, attr, is_file)`` of an import path, or a clear error."""
    target, _, attr = name.rpartition(":")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    ok_module = all(part.isidentifier() for part in target.split(".")) if target else False
    if not target or not attr.isidentifier() or not (is_file or ok_module):
        raise LprError(
            f"{what} = {name!r} is not a valid import path: expected "
            "'package.module:attribute' (an importable module) or 'path/to/file.py:attribute' "
            "(a Python file), e.g. 'mynets.vit:build' or 'nets.py:build'."
        )
    return target, attr, is_file


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_file(target: str, base: str | Path | None, what: str, name: str) -> Path:
    """The file ``target`` names: absolute, or relative to ``base`` (the study file's
    folder), else to the working directory."""
    p = Path(target).expanduser()
    candidates = [p] if p.is_absolute() else [
        *([Path(base) / p] if base is not None else []), Path.cwd() / p
    ]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    tried = ", ".join(repr(str(c)) for c in candidates)
    raise LprError(
        f"{what} = {name!r}: the file {target!r} does not exist (looked at {tried}): expected "
        "a Python file, relative to the study file or the working directory, or an "
        "absolute path."
    )


# ---------------------------------------------------------------------------- resolution
def resolve(name: str, base: str | Path | None, what: str) -> tuple[Callable, CodeRef]:
    """Load the callable an import path names and return it with its identity."""
    target, attr, is_file = split_import_path(name, what)
    if is_file:
        path = find_file(target, base, what, name)
        sha = sha256_file(path)
        module = _module_from_text(path, sha, path.read_bytes().decode(), what, name)
        obj = _attribute(module, attr, what, name)
        return obj, CodeRef(sha256=sha, file=str(path))
    module = _import_module(target, base, what, name)
    obj = _attribute(module, attr, what, name)
    source = _defining_file(obj, module)
    if source is None:
        raise LprError(
            f"{what} = {name!r}: no source file defines {attr!r} (a compiled or built-in "
            "object), so its code cannot be identified: expected a callable defined in a "
            ".py file."
        )
    package, version = _distribution(target.split(".")[0])
    return obj, CodeRef(sha256=sha256_file(source), package=package, version=version,
                        file=str(source))


def load(name: str, code: CodeRef | None, what: str) -> Callable:
    """The callable of an import path whose identity was recorded as ``code``.

    Raises :class:`LprError` when the code found now is not the recorded code (the file
    was edited, or the package upgraded, since the run was described).
    """
    target, attr, is_file = split_import_path(name, what)
    if code is None:
        return resolve(name, None, what)[0]
    if is_file:
        text = _file_text(code, what, name)
        module = _module_from_text(Path(code.file or target), code.sha256, text, what, name)
        return _attribute(module, attr, what, name)
    obj, now = resolve(name, _import_root(target, code.file), what)
    if (now.sha256, now.package, now.version) != (code.sha256, code.package, code.version):
        raise LprError(
            f"{what} = {name!r}: the code found now ({_describe(now)}) is not the code this "
            f"run was described with ({_describe(code)}): expected the same file and package "
            "version (restore them, or describe a new run)."
        )
    return obj


def _import_root(target: str, file: str | None) -> Path | None:
    """The folder to import ``target`` from, given the file it was found in."""
    if not file:
        return None
    depth = len(target.split(".")) + (Path(file).name == "__init__.py")
    parents = Path(file).parents
    return parents[depth - 1] if depth - 1 < len(parents) else None


def _file_text(code: CodeRef, what: str, name: str) -> str:
    path = Path(code.file) if code.file else None
    if path is not None and path.is_file():
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == code.sha256:
            return data.decode()
        if code.sha256 not in _SHIPPED:
            raise LprError(
                f"{what} = {name!r}: the file {str(path)!r} has changed since this run was "
                f"described (sha256 recorded {code.sha256[:12]}..., now "
                f"{hashlib.sha256(data).hexdigest()[:12]}...): expected the file this run was "
                "made with; restore it, or describe a new run (a new run id)."
            )
    if code.sha256 in _SHIPPED:
        return _SHIPPED[code.sha256]
    raise LprError(
        f"{what} = {name!r}: the file {code.file!r} is not found here: expected it at that "
        "path (on a cluster: a filesystem every worker sees, or run the study with "
        "`lprcausal study run`, which ships the file to its workers)."
    )


def _describe(code: CodeRef) -> str:
    pkg = f"{code.package} {code.version}, " if code.package else ""
    return f"{pkg}sha256 {code.sha256[:12]}... of {code.file}"


def _module_from_text(path: Path, sha: str, text: str, what: str, name: str):
    if sha in _MODULES:
        return _MODULES[sha]
    mod_name = f"lprcausal_user_{_safe(path.stem)}_{sha[:12]}"
    module = types.ModuleType(mod_name)
    module.__file__ = str(path)
    sys.modules[mod_name] = module  # dataclasses and pickling look modules up by name
    folder = str(path.parent)
    sys.path.insert(0, folder)  # so the file can import its sibling files
    try:
        exec(compile(text, str(path), "exec"), module.__dict__)
    except Exception as exc:
        del sys.modules[mod_name]
        raise LprError(
            f"{what} = {name!r}: running the file {str(path)!r} raised "
            f"{type(exc).__name__}: {exc}. Expected a file that imports cleanly."
        ) from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    _MODULES[sha] = module
    return module


def _safe(stem: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in stem)


def _import_module(target: str, base, what: str, name: str):
    extra = [str(p) for p in (base, Path.cwd()) if p is not None]
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is None or not target.startswith(exc.name):
            return _import_failed(exc, what, name)
    except Exception as exc:
        return _import_failed(exc, what, name)
    # Not on sys.path: try next to the study file and in the working directory.
    added = [p for p in extra if p not in sys.path]
    sys.path[:0] = added
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise LprError(
            f"{what} = {name!r}: the module {target!r} is not found ({exc}): expected an "
            "installed or importable module (on PYTHONPATH, next to the study file or in the "
            "working directory), or a file path such as 'nets.py:build'."
        ) from None
    except Exception as exc:
        return _import_failed(exc, what, name)
    finally:
        for p in added:
            if p in sys.path:
                sys.path.remove(p)


def _import_failed(exc: Exception, what: str, name: str):
    raise LprError(
        f"{what} = {name!r}: importing it raised {type(exc).__name__}: {exc}. Expected a "
        "module that imports cleanly."
    ) from None


def _attribute(module, attr: str, what: str, name: str) -> Callable:
    if not hasattr(module, attr):
        public = sorted(
            k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
        )
        raise LprError(
            f"{what} = {name!r}: the module has no attribute {attr!r}: expected one of its "
            f"callables: {', '.join(public[:20]) or 'none'}."
        )
    obj = getattr(module, attr)
    if not callable(obj):
        raise LprError(f"{what} = {name!r}: {attr!r} is a {type(obj).__name__}, not callable.")
    return obj


def _defining_file(obj, module) -> Path | None:
    try:
        src = inspect.getsourcefile(inspect.unwrap(obj))
    except TypeError:
        src = None
    if src is None:
        src = getattr(module, "__file__", None)
    return Path(src).resolve() if src and Path(src).is_file() else None


def _distribution(top: str) -> tuple[str | None, str | None]:
    """Name and version of the installed distribution providing package ``top``."""
    from importlib import metadata

    try:
        names = metadata.packages_distributions().get(top) or []
        if not names:
            return None, None
        return names[0], metadata.version(names[0])
    except Exception:  # broken metadata: identify by the file hash alone
        return None, None


# ---------------------------------------------------------------------------- shipping
def shipped_sources(codes: Iterable[CodeRef | None]) -> tuple[tuple[str, str], ...]:
    """``(sha256, text)`` of every file-based code ref, for Dask workers."""
    out = {}
    for code in codes:
        if code is not None and code.package is None and code.file and code.sha256 not in out:
            path = Path(code.file)
            if path.is_file() and sha256_file(path) == code.sha256:
                out[code.sha256] = path.read_bytes().decode()
    return tuple(sorted(out.items()))


def register_sources(sources: Iterable[tuple[str, str]]) -> None:
    """Make shipped file texts loadable here (verified against their hash)."""
    for sha, text in sources:
        if hashlib.sha256(text.encode()).hexdigest() == sha:
            _SHIPPED[sha] = text


# ---------------------------------------------------------------------------- configs
def resolve_model(model: ModelConfig, base: str | Path | None = None) -> ModelConfig:
    """``model`` with the identity of its code filled in (built-in names unchanged).

    ``base``: the folder a relative file path is looked up in first (the study file's).
    """
    if not is_import_path(model.name):
        return model
    return replace(model, code=resolve(model.name, base, "model")[1])


def resolve_data(data: DataConfig, base: str | Path | None = None) -> DataConfig:
    """``data`` with the identity of its loader filled in (built-in names unchanged)."""
    if not is_import_path(data.name):
        return data
    return replace(data, code=resolve(data.name, base, "dataset")[1])


def resolve_find(spec: FindSpec, base: str | Path | None = None) -> FindSpec:
    """A find spec whose user code (model, dataset) is identified; resolved specs and
    built-in ones come back unchanged."""
    model, data = spec.model, spec.data
    if model.code is None:
        model = resolve_model(model, base)
    if data.code is None:
        data = resolve_data(data, base)
    return spec if (model, data) == (spec.model, spec.data) else replace(spec, model=model, data=data)
