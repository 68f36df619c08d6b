"""The vardkedja command line and the embedded demo federation."""
