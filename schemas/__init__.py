"""Versioned JSON Schemas of every speakerline CloudEvent (data files; this package only makes them installable)."""
