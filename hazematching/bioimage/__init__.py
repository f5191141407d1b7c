"""BioImage.IO packages on disk: layout, listed GitHub users, what we use of bioimageio.spec."""
