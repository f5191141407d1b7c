"""Export of trained models as tested BioImage.IO model packages: description, card, cover,
recipe, and the `check` of a package against bioimageio.core, consumer-tool and zoo rules."""
