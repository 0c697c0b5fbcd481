"""An example betascope plug-in: logistic regression on seeded synthetic data.

`betascope_logreg.spec` holds the spec model (what a sweep's `problem:` section
says, validated by the API without torch); `betascope_logreg.problem` the loss,
from which betascope derives gradients with torch.func.
"""
