"""cwi: the helper package behind the book "How contrastive sentence encoders weight words".

A reproduction of Kurita, Kobayashi, Yokoi and Inui (2023), "Contrastive
Learning-based Sentence Encoders Implicitly Weight Informative Words".  One module
per concern (see CONTRIBUTING.md): ``config`` (profiles), ``data`` (datasets), ``stats``
(word statistics), ``theory`` (additive encoders, InfoNCE), ``models`` (encoder
registry), ``train`` (masked-LM, SimCSE, STS), ``attribution`` (vector Integrated
Gradients and SHAP), ``analysis`` (regressions), ``weighting`` (weighted averages of
static word vectors on STS), ``cache`` (artefact store), ``integrity`` (checksums of
stored files), ``pipeline`` (a profile's cached artefacts), ``plotting`` (figure style);
the command line in ``__main__`` runs the chapters and renders the book.
"""

__version__ = "0.1.0"
