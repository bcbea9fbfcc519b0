"""attnserve models: attention modules, architectures built from them, export and demo models."""
