"""Baselines: one file per method, registered under its file name.

Every module in this folder is imported (sorted, by :mod:`pkgutil`), so adding a baseline is
one new file with one ``@METHODS.register()`` line; nothing else needs editing.
"""
