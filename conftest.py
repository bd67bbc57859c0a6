"""Doctests of symspec.diffusers run where diffusers and torch are installed (the test extra)."""

import importlib.util

collect_ignore = [] if all(importlib.util.find_spec(m) for m in ("diffusers", "torch")) \
    else ["symspec/diffusers"]
