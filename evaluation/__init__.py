"""`musicgen-eval`: how well a MusicGen model follows its prompts, judged by analysers that are not the model
(instrument classifier, tempo estimator) on held-out prompts, beside the codec's own reconstruction scores."""
