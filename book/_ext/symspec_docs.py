"""Sphinx helpers for the symspec API reference.

- ``symspec.NAME`` cross-references resolve to where ``NAME`` is documented: everything in
  ``symspec.__all__`` is importable from the package, but the reference documents it under
  its defining module (``symspec.numeric.spectral_response``).
- Built-in samplers (module-level :class:`symspec.symbolic.engine.Sampler` objects such as
  ``symspec.symbolic.samplers.DDPM``) are documented with the docstring of their step function.
"""

from __future__ import annotations

from sphinx.ext.autodoc import DataDocumenter, ModuleDocumenter
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


def _resolve(app, env, node, contnode):
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("symspec."):
        return None
    name = target.removeprefix("symspec.")
    py = env.get_domain("py")
    hits = [full for full in py.objects
            if full.startswith("symspec.") and full.count(".") == 2 and full.endswith("." + name)]
    if len(hits) != 1:
        return None
    return py.resolve_xref(env, node["refdoc"], app.builder, "obj", hits[0], node, contnode)


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.add_autodocumenter(SamplerDocumenter)
    app.connect("missing-reference", _resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
