"""``semflow app``: the model in a browser page, both directions (segment an image, paint a mask into images).

The page's work is done by plain functions, image in and outputs out, that know nothing of the browser and
are tested without one:

* :mod:`semflow.app.uploads`: what an upload may be (bytes, pixels), reading images and masks with the
  command line's rules;
* :mod:`semflow.app.segmentation`: an image to its mask, overlay, legend, trajectory strip and the files
  ``semflow segment`` writes;
* :mod:`semflow.app.synthesis`: a painted or uploaded mask to K images, and those images segmented back;
* :mod:`semflow.app.card`: the model card (classes, training configuration, metrics);
* :mod:`semflow.app.workspace`: the one temporary folder everything is written to.

:mod:`semflow.app.ui` lays them out with Gradio (the optional extra ``semflow[app]``); only it imports Gradio.
"""
