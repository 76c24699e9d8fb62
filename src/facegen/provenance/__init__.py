"""Provenance of generated faces: C2PA content credentials and an invisible watermark that name the model version."""
