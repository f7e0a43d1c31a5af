"""Servicing tapes: formats, whole-file inspection, parsing, delivery checks and the dlt source.

Only ``source.py`` imports dlt, so parsing and inspection stay cheap to import.
"""
