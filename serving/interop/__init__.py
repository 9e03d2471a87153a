"""The 互联互通 (4A) query services and WS/T 500 shared documents (docs/interop-4a.md)."""
