"""Export of trained models as BioImage.IO model packages (`package`), their recipes (`recipe`),
and running exported packages through bioimageio.core (`runner`)."""
