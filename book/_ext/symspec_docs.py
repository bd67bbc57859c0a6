"""Sphinx helpers for the symspec API reference.

- Each object is documented once, under its shortest public name (``symspec.derive``,
  ``symspec.design.divergence_grad``, ``symspec.schedules.inference_timesteps``).  A
  reference to any other import path of the same object (``symspec.symbolic.engine.derive``,
  ``symspec.numeric.Response.transfer``, or a short name inside a docstring) resolves to it:
  the target is imported and matched by identity against the documented objects.
- Built-in samplers (module-level :class:`symspec.Sampler` objects such as
  ``symspec.DDPM``) are documented with the docstring of their step function.
- A constant documented under a re-export (``symspec.SAMPLERS``) keeps the ``#:`` comment
  of the module that defines it; a constant in a module's ``__all__`` is documented even
  without one.

It also sets up the kernels that execute the chapters (:func:`_kernels`): they run in the
book's own IPython profile, ``book/_ipython`` (which records the text size of every figure,
see ``symspec_figure_text.py``), and speak to the build over CurveZMQ-encrypted sockets.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

from sphinx.ext.autodoc import DataDocumenter, ModuleDocumenter
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docstrings import prepare_docstring


class SamplerDocumenter(DataDocumenter):
    """A module-level Sampler, documented by its step function's docstring."""

    objtype = "sampler"
    directivetype = "data"
    priority = DataDocumenter.priority + 10

    @classmethod
    def can_document_member(cls, member, membername, isattr, parent) -> bool:
        from symspec.symbolic.engine import Sampler

        return isinstance(parent, ModuleDocumenter) and isinstance(member, Sampler)

    def should_suppress_value_header(self) -> bool:
        return True

    def get_doc(self) -> list[list[str]]:
        return [prepare_docstring(self.object.doc)] if self.object.doc else []


class ReexportedDataDocumenter(DataDocumenter):
    """Module data whose ``#:`` comment lives in the module that defines it."""

    priority = DataDocumenter.priority + 1

    @classmethod
    def can_document_member(cls, member, membername, isattr, parent) -> bool:
        # also the constants a module lists in __all__ without a ``#:`` comment
        listed = membername in getattr(getattr(parent, "object", None), "__all__", ())
        return isinstance(parent, ModuleDocumenter) and not isinstance(member, ModuleType) \
            and (isattr or listed)

    def get_module_comment(self, attrname: str) -> list[str] | None:
        found = super().get_module_comment(attrname)
        if found:
            return found
        for name, mod in sorted(sys.modules.items()):
            if (name.startswith("symspec.") and name != self.modname
                    and getattr(mod, attrname, None) is self.object):
                try:
                    docs = ModuleAnalyzer.for_module(name).find_attr_docs()
                except Exception:  # noqa: BLE001 - no source: no comment
                    continue
                if ("", attrname) in docs:
                    return list(docs[("", attrname)])
        return None


def _lookup(path: str):
    """The object at a dotted import path, or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return None
            obj = getattr(obj, attr)
        return obj
    return None


def _key(obj):
    # values such as numbers and strings are shared by unrelated names: not an identity
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return None
    return id(obj)


def _documented(env) -> dict:
    """id(object) -> documented full name, for every documented symspec object."""
    py = env.get_domain("py")
    index = {}
    for full in sorted(py.objects, key=lambda n: (n.count("."), n)):
        if not full.startswith("symspec"):
            continue
        key = _key(_lookup(full))
        if key is not None:
            index.setdefault(key, full)
    return index


def _resolve(app, env, node, contnode):
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target:
        return None
    target = target.lstrip(".~")
    context = [c for c in (node.get("py:module"), node.get("py:class")) if c]
    candidates = [target]
    if node.get("py:module"):
        candidates.append(f"{node['py:module']}.{target}")
        if node.get("py:class"):
            candidates.append(f"{node['py:module']}.{node['py:class']}.{target}")
    if not (target.startswith("symspec") or context):
        return None
    py = env.get_domain("py")
    index = _documented(env)
    for path in candidates:
        if not path.startswith("symspec"):
            continue
        parts = path.split(".")
        # the object itself, or an attribute of a documented object (a field, a method)
        for cut in range(len(parts), 1, -1):
            key = _key(_lookup(".".join(parts[:cut])))
            if key is None or key not in index:
                continue
            full = ".".join([index[key], *parts[cut:]])
            if full in py.objects:
                return py.resolve_xref(env, node["refdoc"], app.builder, "obj", full, node,
                                       contnode)
            break
    return None


def _kernels() -> None:
    """Set up the kernels myst-nb starts (they inherit this process's environment).

    - ``IPYTHONDIR`` is the book's profile folder, so every chapter's kernel loads
      ``book/_ipython/profile_default/ipython_kernel_config.py`` and none of the reader's
      own IPython settings.
    - Kernel transport is encrypted.  ipykernel warns at every kernel start (``IPKernelApp
      WARNING | Kernel is running over TCP without encryption``) unless its kernel manager
      provisions CurveZMQ keys, which jupyter_client does only when
      ``KernelManager.transport_encryption`` is ``"auto"`` or ``"required"``: its default is
      ``"disabled"``, and myst-nb (through jupyter-cache and nbclient) creates its kernel
      managers with no configuration, so the default is changed here.  ``"auto"`` provisions
      keys when the kernelspec declares ``curve`` support (ipykernel's does) and otherwise
      starts the kernel as before.
    """
    os.environ["IPYTHONDIR"] = str(Path(__file__).resolve().parents[1] / "_ipython")
    import zmq
    from jupyter_client.manager import KernelManager

    trait = KernelManager.class_traits().get("transport_encryption")
    if trait is not None and zmq.has("curve"):
        trait.default_value = "auto"


def setup(app):
    _kernels()
    app.setup_extension("sphinx.ext.autodoc")
    app.add_autodocumenter(SamplerDocumenter)
    app.add_autodocumenter(ReexportedDataDocumenter, override=True)
    app.connect("missing-reference", _resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
