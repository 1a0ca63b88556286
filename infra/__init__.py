"""The ground floor both stages stand on, importing nothing of ours: configs from YAML with dotted overrides, the
training command line, atomic writes, checkpoints and run folders, torchrun process groups, the learning-rate
schedule, the training log, the step-indexed batch sampler, audio files, mel spectrograms, safetensors weights and
manifests."""
