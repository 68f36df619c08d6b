"""The four services of vardkedja; each exposes SPEC in its spec module."""
