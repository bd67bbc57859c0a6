"""Writing output files without losing what is there.

:func:`write_outputs` writes all the outputs of one command or none of them:

* a path that does not exist, or a regular file, is written through a temporary file in the
  same folder and a rename, so it is never half-written; a file that is replaced keeps its
  mode (and, for root, its owner);
* a symbolic link is followed: its target is written, the link stays;
* a character device or a FIFO (``/dev/stdout``, a named pipe) is written directly, and so
  is a file with several hard links (so that they keep sharing it), after all the others;
  anything else (a folder, a block device, a socket) is refused before anything is written;
* every target is checked first (:func:`check_output`), so a command can check its outputs
  before a long computation; a failure while writing removes the temporary files and leaves
  every existing file as it was: if a rename fails after others succeeded, the files
  already replaced are put back (from hard-linked backups) and new ones removed.  Only the
  direct writes, last, cannot be undone.
* two outputs naming the same file are refused; errors name the output, never a
  temporary file.

Temporary files are named ``.NAME.symspec-tmp-XXXXXXXX``; one left by a killed process is
removed by the next write into that folder once it is an hour old.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

__all__ = ["check_output", "write_outputs", "atomic_write"]

_TMP = ".symspec-tmp-"
_STALE = 3600.0  # seconds after which a temporary file of ours is abandoned


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    try:
        return Path(os.path.realpath(p)) if p.is_symlink() else p
    except OSError:
        return p


def check_output(path: str | Path, name: str = "--out") -> Path:
    """The path to write for ``path`` (a symlink's target), or ``ValueError`` saying why not.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> check_output(os.path.join(d, "x.json")).name
    'x.json'
    >>> check_output(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --out: ... is a folder, not a file
    """
    target = _resolve(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        folder = target.parent if str(target.parent) else Path(".")
        if not folder.is_dir():
            raise ValueError(f"{name}: the folder of {path} does not exist") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"{name}: cannot write {path}: its folder is not writable") \
                from None
        return target
    except OSError as exc:
        raise ValueError(f"{name}: cannot write {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{name}: {path} is a folder, not a file")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        raise ValueError(f"{name}: {path} is not a regular file, a character device or a FIFO; "
                         "refusing to replace it")
    if not os.access(target, os.W_OK):
        raise ValueError(f"{name}: cannot write {path}: permission denied")
    if stat.S_ISREG(st.st_mode) and not os.access(target.parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot replace {path}: its folder is not writable")
    return target


def _clean_stale(folder: Path) -> None:
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        if e.name.startswith(".") and _TMP in e.name:
            try:
                if e.is_file(follow_symlinks=False) and now - e.stat().st_mtime > _STALE:
                    os.unlink(e.path)
            except OSError:
                pass


def write_outputs(outputs: list[tuple[str | Path, bytes | str, str]]) -> None:
    """Write each ``(path, data, name)``, all or none (see the module docstring).

    ``name`` is how errors refer to the output (``"--out"``, ``"--plot"``).  Raises
    ``ValueError`` naming the output that failed; then nothing was changed.
    """
    targets = [(check_output(p, nm), p, data, nm) for p, data, nm in outputs]
    seen: dict[str, str] = {}
    for target, _, _, nm in targets:
        key = os.path.realpath(target)
        if key in seen:
            raise ValueError(f"{nm} and {seen[key]} name the same file {target}")
        seen[key] = nm
    staged: list[tuple[str, Path, str | Path, str]] = []
    direct = []
    try:
        for target, given, data, nm in targets:
            raw = data.encode() if isinstance(data, str) else data
            if target.exists() and (not target.is_file() or os.stat(target).st_nlink > 1):
                direct.append((target, raw, given, nm))  # device, FIFO, hard link: last
                continue
            folder = target.parent if str(target.parent) else Path(".")
            _clean_stale(folder)
            prefix = f".{target.name[:200]}{_TMP}"
            try:
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix)
            except OSError as exc:
                raise ValueError(f"{nm}: cannot write {given}: {exc.strerror}") from None
            staged.append((tmp, target, given, nm))
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(raw)
                _copy_mode(target, tmp)
            except OSError as exc:
                raise ValueError(f"{nm}: cannot write {given}: {exc.strerror}") from None
        _replace_all(staged)
        staged = []
        for target, raw, given, nm in direct:
            try:
                with open(target, "wb") as f:
                    f.write(raw)
            except OSError as exc:
                raise ValueError(f"{nm}: cannot write {given}: {exc.strerror}") from None
    finally:
        for tmp, *_ in staged:
            Path(tmp).unlink(missing_ok=True)


def _replace_all(staged: list[tuple[str, Path, str | Path, str]]) -> None:
    """Rename every temporary file onto its target, or undo the renames already done."""
    done: list[tuple[Path, bool, str | None]] = []  # (target, existed, hard-linked backup)
    try:
        for tmp, target, given, nm in staged:
            existed, backup = target.exists(), None
            if existed and len(staged) > 1:
                try:
                    os.link(target, f"{tmp}.bak")
                    backup = f"{tmp}.bak"
                except OSError:
                    pass  # no hard links here: this file could not be put back
            try:
                os.replace(tmp, target)
            except OSError as exc:
                if backup:
                    Path(backup).unlink(missing_ok=True)
                raise ValueError(f"{nm}: cannot write {given}: {exc.strerror}") from None
            done.append((target, existed, backup))
    except BaseException:
        for target, existed, backup in reversed(done):
            try:
                if backup:
                    os.replace(backup, target)
                elif not existed:
                    target.unlink(missing_ok=True)
            except OSError:
                pass
        raise
    finally:
        for _, _, backup in done:
            if backup:
                Path(backup).unlink(missing_ok=True)


def _copy_mode(target: Path, tmp: str) -> None:
    """Give ``tmp`` the mode of the file it replaces, or the mode ``open()`` would."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        return
    os.chmod(tmp, stat.S_IMODE(st.st_mode))
    if hasattr(os, "chown"):
        try:
            os.chown(tmp, st.st_uid, st.st_gid)
        except PermissionError:
            pass  # not root: the file becomes the writer's, as any editor would leave it


def atomic_write(path: str | Path, data: bytes | str, name: str = "--out") -> None:
    """Write one output (see :func:`write_outputs`)."""
    write_outputs([(path, data, name)])
